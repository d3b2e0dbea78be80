//! The Git source (`Source/Sluice/Git/1`): a shallow clone of the branch head with the `git` CLI,
//! zipped without `.git` into the action's output artifact, and the commit's details as output
//! variables (CommitId, CommitMessage, BranchName, AuthorName, AuthorDate, RepositoryUrl).

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use super::{Context, Output, clean_environment};

/// The longest a clone may take.
const TIMEOUT: Duration = Duration::from_secs(600);

pub async fn run(ctx: &Context) -> Result<Output, String> {
    let url = ctx
        .configuration
        .get("RepositoryUrl")
        .ok_or("the action has no RepositoryUrl")?
        .clone();
    let branch = ctx
        .configuration
        .get("Branch")
        .ok_or("the action has no Branch")?
        .clone();
    if ctx.configuration.contains_key("ConnectionName") {
        return Err("connections (stored Git credentials) are not available yet; remove ConnectionName to clone a public or local repository".into());
    }
    let output_name = ctx
        .action
        .output_artifacts
        .iter()
        .flatten()
        .next()
        .map(|o| o.name.clone())
        .ok_or("the action declares no output artifact")?;
    let work = tempfile::tempdir().map_err(|e| format!("cannot make a work directory: {e}"))?;
    let home = work.path().join("home");
    let checkout = work.path().join("src");
    std::fs::create_dir_all(&home).map_err(|e| format!("cannot make a work directory: {e}"))?;
    // Its only setting: clone repositories whoever owns them (a local repository belongs to
    // another user than the one clones run as).
    std::fs::write(home.join("gitconfig"), "[safe]\n\tdirectory = *\n")
        .map_err(|e| format!("cannot make a work directory: {e}"))?;
    let runner = ctx.runner.clone()?;
    super::hand_over(work.path(), runner)?;

    let log = &ctx.log;
    match &ctx.revision {
        None => {
            log.line(&format!("[Sluice] cloning {url} (branch {branch})"));
            git(
                log,
                runner,
                &home,
                work.path(),
                &[
                    "clone",
                    "--quiet",
                    "--depth",
                    "1",
                    "--single-branch",
                    "--no-tags",
                    "--branch",
                    &branch,
                    "--",
                    &url,
                    &checkout.display().to_string(),
                ],
            )
            .await
            .map_err(|e| format!("git clone of {url} (branch {branch}) failed: {e}"))?;
        }
        Some(revision) => {
            // The execution is pinned to this commit (a source revision override, or what an
            // earlier attempt of this action in the same execution checked out).
            log.line(&format!("[Sluice] fetching commit {revision} of {url}"));
            check_out(log, runner, &home, &checkout, &url, &branch, revision)
                .await
                .map_err(|e| format!("git fetch of commit {revision} from {url} failed: {e}"))?;
        }
    }
    let described = git(
        log,
        runner,
        &home,
        &checkout,
        &["log", "-1", "--format=%H%x00%an%x00%aI%x00%B"],
    )
    .await
    .map_err(|e| format!("reading the commit failed: {e}"))?;
    let mut fields = described.splitn(4, '\0');
    let commit = fields.next().unwrap_or_default().trim().to_string();
    let author = fields.next().unwrap_or_default().to_string();
    let date = fields.next().unwrap_or_default().to_string();
    let message = fields.next().unwrap_or_default().trim_end().to_string();
    log.line(&format!(
        "[Sluice] checked out {commit}: {}",
        message.lines().next().unwrap_or_default()
    ));

    let store = ctx.store.clone();
    let key = ctx.key.clone();
    let limit = ctx.artifact_limit;
    let zip = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let mut zip = tempfile::tempfile().map_err(|e| e.to_string())?;
        crate::artifacts::archive::zip_directory(&checkout, &mut zip, limit)
            .map_err(|e| e.to_string())?;
        Ok(zip)
    })
    .await
    .map_err(|e| format!("packing the source failed: {e}"))?
    .map_err(|e| format!("packing the source failed: {e}"))?;
    let stored = store
        .put(&key, zip)
        .await
        .map_err(|e| format!("storing the source failed: {e}"))?;

    let variables = [
        ("CommitId", commit.clone()),
        ("CommitMessage", message.chars().take(4096).collect()),
        ("BranchName", branch),
        ("AuthorName", author),
        ("AuthorDate", date),
        ("RepositoryUrl", url),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Ok(Output {
        summary: Some(format!("Checked out {}", &commit[..commit.len().min(12)])),
        variables,
        artifacts: vec![(output_name, stored)],
    })
}

/// Checks out one commit into `checkout`: a shallow fetch of just that commit, or, where the
/// server does not serve commits by id, the branch's history searched for it.
async fn check_out(
    log: &super::log::Log,
    runner: Option<(u32, u32)>,
    home: &Path,
    checkout: &Path,
    url: &str,
    branch: &str,
    revision: &str,
) -> Result<(), String> {
    if revision.len() < 7 || !revision.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("a commit id is 7 to 64 hexadecimal digits".into());
    }
    std::fs::create_dir_all(checkout).map_err(|e| e.to_string())?;
    super::hand_over(checkout, runner)?;
    git(log, runner, home, checkout, &["init", "--quiet"]).await?;
    git(
        log,
        runner,
        home,
        checkout,
        &["remote", "add", "origin", "--", url],
    )
    .await?;
    let shallow = git(
        log,
        runner,
        home,
        checkout,
        &[
            "fetch",
            "--quiet",
            "--depth",
            "1",
            "--no-tags",
            "origin",
            revision,
        ],
    )
    .await;
    if shallow.is_err() {
        log.line("[Sluice] the server does not serve single commits; fetching the branch");
        git(
            log,
            runner,
            home,
            checkout,
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "origin",
                &format!("refs/heads/{branch}"),
            ],
        )
        .await?;
    }
    let target = if shallow.is_ok() {
        "FETCH_HEAD"
    } else {
        revision
    };
    git(
        log,
        runner,
        home,
        checkout,
        &["checkout", "--quiet", "--detach", target],
    )
    .await?;
    Ok(())
}

/// Runs `git` in `dir` with a clean environment, no prompts, no system configuration and a
/// global one of its own; its standard output, or its last lines of standard error. What it
/// writes to standard error goes to the log.
async fn git(
    log: &super::log::Log,
    runner: Option<(u32, u32)>,
    home: &Path,
    dir: &Path,
    args: &[&str],
) -> Result<String, String> {
    let mut command = Command::new("git");
    if let Some((uid, gid)) = runner {
        command.uid(uid).gid(gid);
    }
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(clean_environment(home))
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", home.join("gitconfig"))
        // Only transports a RepositoryUrl may name (never ext::, which runs commands).
        .env("GIT_ALLOW_PROTOCOL", "https:ssh:file")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(TIMEOUT, command.output())
        .await
        .map_err(|_| format!("it took longer than {} s", TIMEOUT.as_secs()))?
        .map_err(|e| format!("cannot run git: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    log.lines(&stderr);
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        Err(tail.into_iter().rev().collect::<Vec<_>>().join(" / "))
    }
}
