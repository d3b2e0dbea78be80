//! Command build and test (`Build|Test/Sluice/Command/1`, CodeBuild's role): the input artifacts
//! extracted into a fresh work directory (the primary one as the working directory, the others
//! named by `CODEBUILD_SRC_DIR_<name>`), the buildspec's phases run by one bash session (so `cd`
//! and `export` carry from command to command, as in CodeBuild), in a clean environment, in a
//! process group of its own that the timeout, an abandon or a lost lease kills whole; then the
//! exported variables read back and the output artifact zipped and sealed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::buildspec::{self, BuildSpec, OnFailure};
use super::{Context, Output, clean_environment, process};
use crate::artifacts::archive;

/// CodeBuild's default build timeout.
const DEFAULT_TIMEOUT_MINUTES: u64 = 60;

pub async fn run(ctx: &Context) -> Result<Output, String> {
    let work = tempfile::tempdir().map_err(|e| format!("cannot make a work directory: {e}"))?;
    let root = work.path().to_path_buf();
    let mut inputs = Vec::with_capacity(ctx.inputs.len());
    for (name, address) in &ctx.inputs {
        let (zip, _) = ctx
            .store
            .get(&ctx.key, address)
            .await
            .map_err(|e| format!("the input artifact {name} cannot be read: {e}"))?;
        inputs.push((name.clone(), zip));
    }
    let (primary, env, spec) = {
        let config = ctx.configuration.clone();
        let limit = ctx.artifact_limit;
        let root = root.clone();
        tokio::task::spawn_blocking(move || prepare(&root, inputs, &config, limit))
            .await
            .map_err(|e| format!("preparing the build failed: {e}"))??
    };
    let timeout_minutes = ctx
        .configuration
        .get("TimeoutInMinutes")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(DEFAULT_TIMEOUT_MINUTES);

    let script = root.join("build.sh");
    let failures = root.join("failures");
    let exported = root.join("exported");
    fs::write(&script, script_for(&spec, &failures, &exported))
        .map_err(|e| format!("cannot write the build script: {e}"))?;
    let runner = ctx.runner.clone()?;
    super::hand_over(&root, runner)?;

    let ended = process::run(
        process::Script {
            program: Path::new("bash"),
            args: vec!["--noprofile".into(), "--norc".into(), script.clone().into()],
            cwd: &primary,
            env: env.into_iter().collect(),
            runner,
            timeout: Duration::from_secs(timeout_minutes * 60),
        },
        &ctx.log,
    )
    .await?;
    // Reports are read whether the build passed or not (that is when they matter most).
    let tests = {
        let (spec, primary, log) = (spec.clone(), primary.clone(), ctx.log.clone());
        tokio::task::spawn_blocking(move || reports(&spec, &primary, &log))
            .await
            .unwrap_or(None)
    };
    let tail = || {
        format!(
            "{}{}",
            tests.as_deref().unwrap_or(""),
            ctx.log.tail_summary()
        )
    };
    let Some(finished) = ended else {
        return Err(format!(
            "the build took longer than its timeout of {timeout_minutes} minutes and was stopped{}",
            tail()
        ));
    };

    if let Ok(recorded) = fs::read_to_string(&failures)
        && let Some(first) = recorded.lines().next()
    {
        let mut parts = first.splitn(3, '\t');
        let phase = parts.next().unwrap_or("?");
        let code = parts.next().unwrap_or("?");
        let command = parts.next().unwrap_or("?");
        return Err(format!(
            "phase {phase}: the command `{command}` exited with {code}{}",
            tail()
        ));
    }
    if !finished.success() {
        return Err(format!("the build exited with {finished}{}", tail()));
    }

    let mut variables = BTreeMap::new();
    if let Ok(raw) = fs::read(&exported) {
        for entry in raw.split(|b| *b == 0) {
            let entry = String::from_utf8_lossy(entry);
            if let Some((name, value)) = entry.split_once('=')
                && spec.exported.iter().any(|e| e == name)
            {
                variables.insert(name.to_string(), value.to_string());
            }
        }
    }

    // What each declared output artifact is made of: the first is the primary `artifacts`, the
    // others the `secondary-artifacts` of the same name.
    let outputs: Vec<String> = ctx
        .action
        .output_artifacts
        .iter()
        .flatten()
        .map(|o| o.name.clone())
        .collect();
    let mut plan = Vec::new();
    for (i, name) in outputs.iter().enumerate() {
        let files = if i == 0 {
            spec.artifacts
                .clone()
                .or_else(|| spec.secondary.get(name).cloned())
        } else {
            spec.secondary.get(name).cloned()
        };
        let files = files.ok_or_else(|| {
            format!(
                "the action's output artifact {name} is not in the buildspec's artifacts{}",
                if i == 0 { "" } else { ".secondary-artifacts" }
            )
        })?;
        plan.push((name.clone(), files));
    }
    let mut artifacts = Vec::new();
    for (n, (name, files)) in plan.into_iter().enumerate() {
        let store = ctx.store.clone();
        let key = ctx.key.clone();
        let limit = ctx.artifact_limit;
        let primary = primary.clone();
        let staged = root.join(format!("artifact-{n}"));
        let zip = tokio::task::spawn_blocking(move || -> Result<_, String> {
            stage_artifact(&primary, &files, &staged)?;
            let mut zip = tempfile::tempfile().map_err(|e| e.to_string())?;
            archive::zip_directory(&staged, &mut zip, limit).map_err(|e| e.to_string())?;
            Ok(zip)
        })
        .await
        .map_err(|e| format!("packing the output artifact {name} failed: {e}"))?
        .map_err(|e| format!("packing the output artifact {name} failed: {e}"))?;
        let stored = store
            .put(&key, zip)
            .await
            .map_err(|e| format!("storing the output artifact {name} failed: {e}"))?;
        ctx.log.line(&format!(
            "[Sluice] output artifact {name}: {} bytes",
            stored.size
        ));
        artifacts.push((name, stored));
    }
    let mut summary = format!(
        "Build succeeded ({} phase{})",
        spec.phases.len(),
        if spec.phases.len() == 1 { "" } else { "s" }
    );
    if let Some(tests) = tests {
        summary.push_str(&tests);
    }
    Ok(Output {
        summary: Some(summary),
        variables,
        artifacts,
        commits: Vec::new(),
    })
}

/// The JUnit reports the buildspec names, summarized (`; tests: 12 passed, 1 failed`), each
/// report group's counts written to the log.
fn reports(spec: &BuildSpec, primary: &Path, log: &super::log::Log) -> Option<String> {
    if spec.reports.is_empty() {
        return None;
    }
    let mut all = super::junit::Counts::default();
    for (group, files) in &spec.reports {
        let mut counts = super::junit::Counts::default();
        let mut read = 0;
        for (_, path) in matching_files(primary, files).unwrap_or_default() {
            // A report larger than this is not a test report.
            if fs::metadata(&path).is_ok_and(|m| m.len() <= 64 * 1024 * 1024)
                && let Ok(xml) = fs::read_to_string(&path)
            {
                counts.add(super::junit::summarize(&xml));
                read += 1;
            }
        }
        log.line(&format!(
            "[Sluice] report {group}: {} passed, {} failed, {} skipped ({read} file{})",
            counts.passed,
            counts.failed,
            counts.skipped,
            if read == 1 { "" } else { "s" }
        ));
        all.add(counts);
    }
    Some(format!(
        "; tests: {} passed, {} failed, {} skipped",
        all.passed, all.failed, all.skipped
    ))
}

type Prepared = (PathBuf, Vec<(String, String)>, BuildSpec);

/// Extracts the inputs (opened zips, by name) and reads the buildspec; the primary directory, the
/// environment, the spec.
fn prepare(
    root: &Path,
    inputs: Vec<(String, fs::File)>,
    config: &BTreeMap<String, String>,
    limit: u64,
) -> Result<Prepared, String> {
    let home = root.join("home");
    fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    let primary_name = config
        .get("PrimarySource")
        .cloned()
        .or_else(|| inputs.first().map(|(n, _)| n.clone()))
        .ok_or("the action has no input artifact")?;
    if !inputs.iter().any(|(n, _)| *n == primary_name) {
        return Err(format!(
            "PrimarySource {primary_name} is not one of the action's input artifacts"
        ));
    }
    let mut env: Vec<(String, String)> = clean_environment(&home)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut primary = root.join("src");
    for (name, zip) in inputs {
        let dir = if name == primary_name {
            root.join("src")
        } else {
            root.join("inputs").join(&name)
        };
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        archive::unzip_into(zip, &dir, limit)
            .map_err(|e| format!("the input artifact {name} cannot be extracted: {e}"))?;
        if name == primary_name {
            primary = dir.clone();
        } else {
            env.push((
                format!("CODEBUILD_SRC_DIR_{name}"),
                dir.display().to_string(),
            ));
        }
    }
    env.push(("CODEBUILD_SRC_DIR".into(), primary.display().to_string()));
    let source = match config.get("BuildSpec") {
        Some(inline) => inline.clone(),
        None => {
            let relative = config
                .get("BuildSpecPath")
                .map_or("buildspec.yml", String::as_str);
            let path = Path::new(relative);
            if path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
                return Err(format!(
                    "BuildSpecPath {relative} must lie inside the primary input artifact"
                ));
            }
            fs::read_to_string(primary.join(path)).map_err(|_| {
                format!("the primary input artifact {primary_name} has no buildspec at {relative}")
            })?
        }
    };
    let spec = buildspec::parse(&source)?;
    for (name, value) in &spec.variables {
        env.push((name.clone(), value.clone()));
    }
    if !spec.secrets.is_empty() {
        let stored: BTreeMap<String, String> = config
            .get("Secrets")
            .ok_or("the buildspec's env.secrets needs the action's Secrets property")
            .and_then(|text| {
                serde_json::from_str(text).map_err(
                    |_| "the action's Secrets must be a JSON object of names to text values",
                )
            })?;
        for (variable, name) in &spec.secrets {
            let value = stored.get(name).ok_or_else(|| {
                format!(
                    "env.secrets.{variable} names {name}, which the action's Secrets does not hold"
                )
            })?;
            env.push((variable.clone(), value.clone()));
        }
    }
    if let Some(list) = config.get("EnvironmentVariables") {
        let vars: Vec<serde_json::Value> = serde_json::from_str(list).map_err(|_| {
            "EnvironmentVariables must be a JSON list of {\"name\", \"value\"}".to_string()
        })?;
        for v in vars {
            if let (Some(n), Some(val)) = (
                v.get("name").and_then(|n| n.as_str()),
                v.get("value").and_then(|x| x.as_str()),
            ) {
                env.push((n.to_string(), val.to_string()));
            }
        }
    }
    Ok((primary, env, spec))
}

/// Quotes `text` for bash, as one word.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// One bash session running the phases: each command through `eval` (so state carries), its
/// failure recorded as `phase<TAB>exit code<TAB>command`; `finally` commands always; ABORT stops
/// the phases that follow. At the end, the environment for the exported variables.
fn script_for(spec: &BuildSpec, failures: &Path, exported: &Path) -> String {
    let failures = quote(&failures.display().to_string());
    // A command that exits the shell itself (`exit 4`) is recorded by the EXIT trap.
    let mut s = format!(
        "set -o pipefail\n__sluice_abort=0\n__sluice_phase=\n__sluice_cmd=\ntrap '__rc=$?; if [ $__rc -ne 0 ] && [ -n \"$__sluice_cmd\" ]; then printf \"%s\\t%s\\t%s\\n\" \"$__sluice_phase\" \"$__rc\" \"$__sluice_cmd\" >> {}; fi' EXIT\n",
        failures.replace('\'', r"'\''")
    );
    for phase in &spec.phases {
        s.push_str(&format!(
            "if [ $__sluice_abort -eq 0 ]; then\n__sluice_failed=0\necho {}\n",
            quote(&format!("[Sluice] Entering phase {}", phase.name))
        ));
        for command in &phase.commands {
            s.push_str(&format!(
                "if [ $__sluice_failed -eq 0 ]; then\necho {}\n__sluice_phase={}\n__sluice_cmd={}\neval {}\n__rc=$?\n__sluice_cmd=\nif [ $__rc -ne 0 ]; then __sluice_failed=1; printf '%s\\t%s\\t%s\\n' {} \"$__rc\" {} >> {}; fi\nfi\n",
                quote(&format!("[Sluice] Running command {command}")),
                quote(phase.name),
                quote(command),
                quote(command),
                quote(phase.name),
                quote(command),
                failures
            ));
        }
        for command in &phase.finally {
            s.push_str(&format!(
                "echo {}\neval {}\n__rc=$?\nif [ $__rc -ne 0 ]; then __sluice_failed=1; printf '%s\\t%s\\t%s\\n' {} \"$__rc\" {} >> {}; fi\n",
                quote(&format!("[Sluice] Running finally command {command}")),
                quote(command),
                quote(&format!("{} (finally)", phase.name)),
                quote(command),
                failures
            ));
        }
        if phase.on_failure == OnFailure::Abort {
            s.push_str("if [ $__sluice_failed -ne 0 ]; then __sluice_abort=1; fi\n");
        }
        s.push_str("fi\n");
    }
    s.push_str(&format!(
        "env -0 > {}\n",
        quote(&exported.display().to_string())
    ));
    s
}

/// The files under the set's `base-directory` matching its patterns: `(path inside the base,
/// full path)`. The base must lie inside the source once links are followed, and links below it
/// are not followed: the worker reads these files, and must not be led outside the build's own.
fn matching_files(
    primary: &Path,
    spec: &buildspec::Artifacts,
) -> Result<Vec<(PathBuf, PathBuf)>, String> {
    let base = match &spec.base_directory {
        Some(b) => {
            let p = Path::new(b);
            if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
                return Err(format!("base-directory {b} must lie inside the source"));
            }
            primary.join(p)
        }
        None => primary.to_path_buf(),
    };
    let Ok(real_base) = fs::canonicalize(&base) else {
        return Ok(Vec::new());
    };
    let real_primary = fs::canonicalize(primary).map_err(|e| e.to_string())?;
    if !real_base.starts_with(&real_primary) {
        return Err(format!(
            "base-directory {} leads outside the source",
            spec.base_directory.as_deref().unwrap_or(".")
        ));
    }
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(real_base.join(&dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let relative = dir.join(entry.file_name());
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(relative);
            } else if kind.is_file() {
                let text = relative.to_string_lossy().replace('\\', "/");
                if spec.files.iter().any(|p| buildspec::matches(p, &text)) {
                    found.push((relative, entry.path()));
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Copies the files an artifact's `files` name into `staged`.
fn stage_artifact(
    primary: &Path,
    spec: &buildspec::Artifacts,
    staged: &Path,
) -> Result<(), String> {
    fs::create_dir_all(staged).map_err(|e| e.to_string())?;
    let found = matching_files(primary, spec)?;
    if found.is_empty() {
        return Err(format!(
            "no file matches the buildspec's artifacts files ({})",
            spec.files.join(", ")
        ));
    }
    for (relative, path) in found {
        let target = if spec.discard_paths {
            staged.join(relative.file_name().unwrap_or_default())
        } else {
            staged.join(&relative)
        };
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        fs::copy(&path, &target).map_err(|e| e.to_string())?;
    }
    Ok(())
}
