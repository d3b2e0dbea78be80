//! Buildspecs (version 0.2, as CodeBuild documents them), for the parts that make sense off AWS:
//! `env` (`variables`, `secrets` (Sluice's: from the action's sealed `Secrets`),
//! `exported-variables`, `shell`), `phases` (`install`, `pre_build`, `build`,
//! `post_build`, each with `commands`, `finally` and `on-failure`), `artifacts` (`files`,
//! `base-directory`, `discard-paths`, `name`, `secondary-artifacts`) and `reports` (JUnit XML). A
//! key Sluice does not support is an error naming it, never ignored.

use std::collections::BTreeMap;

use serde_yaml_ng::{Mapping, Value};

/// The phases, in the order they run.
pub const PHASES: [&str; 4] = ["install", "pre_build", "build", "post_build"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Stop the build (CodeBuild's default).
    #[default]
    Abort,
    /// Go on with the next phase; the build still fails.
    Continue,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Phase {
    pub name: &'static str,
    pub commands: Vec<String>,
    /// Run after `commands`, whether they failed or not.
    pub finally: Vec<String>,
    pub on_failure: OnFailure,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Artifacts {
    pub files: Vec<String>,
    pub base_directory: Option<String>,
    pub discard_paths: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildSpec {
    pub variables: BTreeMap<String, String>,
    /// Environment variable → the name of a value in the action's sealed `Secrets`.
    pub secrets: BTreeMap<String, String>,
    pub exported: Vec<String>,
    pub phases: Vec<Phase>,
    /// The primary artifact: the action's first output artifact.
    pub artifacts: Option<Artifacts>,
    /// `secondary-artifacts`, by identifier: each names another output artifact of the action.
    pub secondary: BTreeMap<String, Artifacts>,
    /// `reports`, by report group: JUnit XML files summarized on the action.
    pub reports: BTreeMap<String, Artifacts>,
}

fn keys(map: &Mapping, at: &str, allowed: &[&str]) -> Result<(), String> {
    for key in map.keys() {
        let name = key
            .as_str()
            .ok_or_else(|| format!("{at} has a key that is not text"))?;
        if !allowed.contains(&name) {
            return Err(format!(
                "{at}{}{name} is not supported by Sluice (supported: {})",
                if at.is_empty() { "" } else { "." },
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

fn text(v: &Value, at: &str) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("{at} must be text")),
    }
}

fn list(v: &Value, at: &str) -> Result<Vec<String>, String> {
    match v {
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| text(item, &format!("{at}[{i}]")))
            .collect(),
        Value::String(s) => Ok(vec![s.clone()]),
        _ => Err(format!("{at} must be a list")),
    }
}

fn mapping<'a>(v: &'a Value, at: &str) -> Result<&'a Mapping, String> {
    v.as_mapping()
        .ok_or_else(|| format!("{at} must be a mapping"))
}

/// Parses a buildspec; every error names the key at fault.
pub fn parse(source: &str) -> Result<BuildSpec, String> {
    let doc: Value = serde_yaml_ng::from_str(source).map_err(|e| match e.location() {
        Some(l) => format!(
            "the buildspec is not valid YAML (line {}, column {})",
            l.line(),
            l.column()
        ),
        None => "the buildspec is not valid YAML".to_string(),
    })?;
    let root = mapping(&doc, "the buildspec")?;
    keys(
        root,
        "",
        &["version", "env", "phases", "artifacts", "reports"],
    )?;
    match root.get("version") {
        Some(Value::Number(n)) if n.as_f64() == Some(0.2) => {}
        Some(Value::String(s)) if s == "0.2" => {}
        _ => return Err("version must be 0.2".into()),
    }
    let mut spec = BuildSpec::default();
    if let Some(env) = root.get("env") {
        let env = mapping(env, "env")?;
        keys(
            env,
            "env",
            &["variables", "secrets", "exported-variables", "shell"],
        )?;
        if let Some(shell) = env.get("shell")
            && text(shell, "env.shell")? != "bash"
        {
            return Err("env.shell: Sluice runs bash".into());
        }
        if let Some(vars) = env.get("variables") {
            for (k, v) in mapping(vars, "env.variables")? {
                let name = text(k, "env.variables")?;
                spec.variables
                    .insert(name.clone(), text(v, &format!("env.variables.{name}"))?);
            }
        }
        if let Some(secrets) = env.get("secrets") {
            for (k, v) in mapping(secrets, "env.secrets")? {
                let name = text(k, "env.secrets")?;
                let from = text(v, &format!("env.secrets.{name}"))?;
                spec.secrets.insert(name, from);
            }
        }
        if let Some(exported) = env.get("exported-variables") {
            spec.exported = list(exported, "env.exported-variables")?;
        }
        if let Some(leak) = spec.exported.iter().find(|e| spec.secrets.contains_key(*e)) {
            return Err(format!(
                "env.exported-variables: {leak} is a secret and cannot become an output variable"
            ));
        }
    }
    let phases = root
        .get("phases")
        .ok_or("the buildspec needs phases")
        .and_then(|p| mapping(p, "phases").map_err(|_| "phases must be a mapping"))?;
    keys(phases, "phases", &PHASES)?;
    for name in PHASES {
        let Some(phase) = phases.get(name) else {
            continue;
        };
        let at = format!("phases.{name}");
        let phase = mapping(phase, &at)?;
        keys(phase, &at, &["commands", "finally", "on-failure", "run-as"])?;
        if phase.contains_key("run-as") {
            return Err(format!(
                "{at}.run-as is not supported: builds run as the worker's build user"
            ));
        }
        let on_failure = match phase
            .get("on-failure")
            .map(|v| text(v, &format!("{at}.on-failure")))
            .transpose()?
            .as_deref()
        {
            None | Some("ABORT") => OnFailure::Abort,
            Some("CONTINUE") => OnFailure::Continue,
            Some(other) => {
                return Err(format!(
                    "{at}.on-failure must be ABORT or CONTINUE (got {other})"
                ));
            }
        };
        spec.phases.push(Phase {
            name,
            commands: phase
                .get("commands")
                .map(|c| list(c, &format!("{at}.commands")))
                .transpose()?
                .unwrap_or_default(),
            finally: phase
                .get("finally")
                .map(|c| list(c, &format!("{at}.finally")))
                .transpose()?
                .unwrap_or_default(),
            on_failure,
        });
    }
    if spec.phases.iter().all(|p| p.commands.is_empty()) {
        return Err("the buildspec's phases have no commands".into());
    }
    if let Some(artifacts) = root.get("artifacts") {
        let a = mapping(artifacts, "artifacts")?;
        keys(
            a,
            "artifacts",
            &[
                "files",
                "base-directory",
                "discard-paths",
                "name",
                "secondary-artifacts",
            ],
        )?;
        let primary = if a.contains_key("files") {
            Some(file_set(a, "artifacts")?)
        } else {
            None
        };
        spec.artifacts = primary;
        if let Some(secondary) = a.get("secondary-artifacts") {
            for (k, v) in mapping(secondary, "artifacts.secondary-artifacts")? {
                let id = text(k, "artifacts.secondary-artifacts")?;
                let at = format!("artifacts.secondary-artifacts.{id}");
                let m = mapping(v, &at)?;
                keys(
                    m,
                    &at,
                    &["files", "base-directory", "discard-paths", "name"],
                )?;
                spec.secondary.insert(id, file_set(m, &at)?);
            }
        }
        if spec.artifacts.is_none() && spec.secondary.is_empty() {
            return Err("artifacts.files is required".into());
        }
    }
    if let Some(reports) = root.get("reports") {
        for (k, v) in mapping(reports, "reports")? {
            let group = text(k, "reports")?;
            let at = format!("reports.{group}");
            let m = mapping(v, &at)?;
            keys(
                m,
                &at,
                &["files", "base-directory", "discard-paths", "file-format"],
            )?;
            if let Some(format) = m.get("file-format") {
                let format = text(format, &format!("{at}.file-format"))?;
                if format != "JUNITXML" {
                    return Err(format!(
                        "{at}.file-format: Sluice reads JUNITXML reports (not {format})"
                    ));
                }
            }
            spec.reports.insert(group, file_set(m, &at)?);
        }
    }
    Ok(spec)
}

/// `files`, `base-directory` and `discard-paths` of an artifact or a report.
fn file_set(a: &Mapping, at: &str) -> Result<Artifacts, String> {
    let files = a
        .get("files")
        .map(|f| list(f, &format!("{at}.files")))
        .transpose()?
        .ok_or_else(|| format!("{at}.files is required"))?;
    let discard_paths = match a
        .get("discard-paths")
        .map(|v| text(v, &format!("{at}.discard-paths")))
        .transpose()?
        .as_deref()
    {
        None | Some("no") | Some("false") => false,
        Some("yes") | Some("true") => true,
        Some(other) => {
            return Err(format!(
                "{at}.discard-paths must be yes or no (got {other})"
            ));
        }
    };
    Ok(Artifacts {
        files,
        base_directory: a
            .get("base-directory")
            .map(|v| text(v, &format!("{at}.base-directory")))
            .transpose()?,
        discard_paths,
    })
}

/// Whether `path` (relative, `/`-separated) matches a buildspec file pattern: `*` within one
/// path segment, `**` across any number of them.
pub fn matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.trim_start_matches("./").split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    segments(&pattern, &path)
}

fn segments(pattern: &[&str], path: &[&str]) -> bool {
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            segments(&pattern[1..], path) || (!path.is_empty() && segments(pattern, &path[1..]))
        }
        (Some(p), Some(s)) => {
            segment(p.as_bytes(), s.as_bytes()) && segments(&pattern[1..], &path[1..])
        }
        _ => false,
    }
}

fn segment(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => segment(&p[1..], s) || (!s.is_empty() && segment(p, &s[1..])),
        (Some(b'?'), Some(_)) => segment(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => segment(&p[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_codebuild_style_buildspec_parses() {
        let spec = parse(
            "version: 0.2\nenv:\n  variables:\n    MODE: release\n    LEVEL: 3\n  exported-variables: [VERSION]\nphases:\n  install:\n    commands: [make deps]\n  build:\n    on-failure: CONTINUE\n    commands:\n      - make\n      - make test\n    finally:\n      - echo done\nartifacts:\n  files: ['**/*']\n  base-directory: dist\n  discard-paths: yes\n",
        )
        .unwrap();
        assert_eq!(spec.variables["MODE"], "release");
        assert_eq!(spec.variables["LEVEL"], "3");
        assert_eq!(spec.exported, ["VERSION"]);
        let with_secrets = parse(
            "version: 0.2\nenv:\n  secrets:\n    TOKEN: npm\nphases:\n  build:\n    commands: [x]\n",
        )
        .unwrap();
        assert_eq!(with_secrets.secrets["TOKEN"], "npm");
        let leaking = parse(
            "version: 0.2\nenv:\n  secrets:\n    TOKEN: npm\n  exported-variables: [TOKEN]\nphases:\n  build:\n    commands: [x]\n",
        )
        .unwrap_err();
        assert!(leaking.contains("TOKEN is a secret"), "{leaking}");
        let names: Vec<&str> = spec.phases.iter().map(|p| p.name).collect();
        assert_eq!(names, ["install", "build"]);
        assert_eq!(spec.phases[1].commands, ["make", "make test"]);
        assert_eq!(spec.phases[1].finally, ["echo done"]);
        assert_eq!(spec.phases[1].on_failure, OnFailure::Continue);
        let a = spec.artifacts.unwrap();
        assert_eq!(
            (a.base_directory.as_deref(), a.discard_paths),
            (Some("dist"), true)
        );
    }

    #[test]
    fn what_sluice_does_not_support_is_named() {
        for (source, named) in [
            (
                "version: 0.2\nphases: {build: {commands: [make]}}\ncache: {paths: [x]}",
                "cache",
            ),
            (
                "version: 0.2\nenv: {parameter-store: {A: b}}\nphases: {build: {commands: [make]}}",
                "env.parameter-store",
            ),
            (
                "version: 0.2\nphases: {compile: {commands: [make]}}",
                "phases.compile",
            ),
            (
                "version: 0.2\nphases: {build: {commands: [make], timeout: 3}}",
                "phases.build.timeout",
            ),
            (
                "version: 0.2\nphases: {build: {commands: [make]}}\nartifacts: {files: [a], secondary-artifacts: {Docs: {files: [x], exclude-paths: [y]}}}",
                "artifacts.secondary-artifacts.Docs.exclude-paths",
            ),
            (
                "version: 0.2\nphases: {build: {commands: [make]}}\nreports: {unit: {files: [x], file-format: CUCUMBERJSON}}",
                "JUNITXML",
            ),
            (
                "version: 0.1\nphases: {build: {commands: [make]}}",
                "version",
            ),
            (
                "version: 0.2\nphases: {build: {commands: [make], on-failure: RETRY}}",
                "on-failure",
            ),
            ("version: 0.2\nphases: {build: {}}", "no commands"),
            ("version: 0.2\nphases: [", "line"),
        ] {
            let err = parse(source).unwrap_err();
            assert!(err.contains(named), "{source}: {err}");
        }
    }

    #[test]
    fn file_patterns_match_like_codebuilds() {
        for (pattern, path, expected) in [
            ("**/*", "a/b/c.txt", true),
            ("**/*", "c.txt", true),
            ("*.jar", "app.jar", true),
            ("*.jar", "lib/app.jar", false),
            ("target/**/*.jar", "target/x/y/app.jar", true),
            ("target/**/*.jar", "target/app.jar", true),
            ("./dist/app", "dist/app", true),
            ("report-?.xml", "report-1.xml", true),
            ("report-?.xml", "report-12.xml", false),
        ] {
            assert_eq!(matches(pattern, path), expected, "{pattern} {path}");
        }
    }
}
