//! The Git source (`Source/Sluice/Git/1`): a shallow clone of the branch head with the `git` CLI
//! ([`HISTORY`] commits deep), zipped without `.git` into the action's output artifact, the
//! commit's details as output variables (CommitId, CommitMessage, BranchName, AuthorName,
//! AuthorEmail, AuthorDate, RepositoryUrl), and the commits behind it (what an approval
//! lists as promoted since the last approved execution).

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use super::{Context, Output, clean_environment};
use crate::ops::connections::Auth;

/// The longest a clone may take.
const TIMEOUT: Duration = Duration::from_secs(600);
/// How many commits a clone reads (the checked-out one and those behind it): an approval lists
/// the commits since the last approved one when they are among these.
pub const HISTORY: usize = 50;

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
    if let Some(credentials) = &ctx.git_credentials {
        credentials.fit(&url)?;
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
    let env = git_env(&home, ctx.git_credentials.as_ref())?;
    let runner = ctx.runner.clone()?;
    super::hand_over(work.path(), runner)?;

    let log = &ctx.log;
    match &ctx.revision {
        None => {
            log.line(&format!("[Sluice] cloning {url} (branch {branch})"));
            git(
                log,
                runner,
                &env,
                work.path(),
                &[
                    "clone",
                    "--quiet",
                    "--depth",
                    &HISTORY.to_string(),
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
            check_out(log, runner, &env, &checkout, &url, &branch, revision)
                .await
                .map_err(|e| format!("git fetch of commit {revision} from {url} failed: {e}"))?;
        }
    }
    let described = git(
        log,
        runner,
        &env,
        &checkout,
        &["log", "-1", "--format=%H%x00%an%x00%ae%x00%aI%x00%B"],
    )
    .await
    .map_err(|e| format!("reading the commit failed: {e}"))?;
    let mut fields = described.splitn(5, '\0');
    let commit = fields.next().unwrap_or_default().trim().to_string();
    let author = fields.next().unwrap_or_default().to_string();
    let email = fields.next().unwrap_or_default().to_string();
    let date = fields.next().unwrap_or_default().to_string();
    let message = fields.next().unwrap_or_default().trim_end().to_string();
    log.line(&format!(
        "[Sluice] checked out {commit}: {}",
        message.lines().next().unwrap_or_default()
    ));
    let history = git(
        log,
        runner,
        &env,
        &checkout,
        &[
            "log",
            "-n",
            &HISTORY.to_string(),
            "--format=%H%x1f%an%x1f%ae%x1f%s%x1e",
        ],
    )
    .await
    .map_err(|e| format!("reading the history failed: {e}"))?;
    let commits = parse_history(&history);

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
        ("AuthorEmail", email),
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
        commits,
    })
}

/// `git log`'s records (`%H %an %ae %s`, unit-separated, record-separated) as commits.
fn parse_history(text: &str) -> Vec<super::SourceCommit> {
    text.split('\x1e')
        .filter_map(|record| {
            let mut f = record.trim_start_matches('\n').split('\x1f');
            let id = f.next()?.trim().to_string();
            if id.is_empty() {
                return None;
            }
            Some(super::SourceCommit {
                id,
                author: f.next().unwrap_or_default().to_string(),
                email: f.next().unwrap_or_default().to_string(),
                message: f.next().unwrap_or_default().chars().take(300).collect(),
            })
        })
        .take(HISTORY)
        .collect()
}

/// Checks out one commit into `checkout`: a shallow fetch of just that commit, or, where the
/// server does not serve commits by id, the branch's history searched for it.
async fn check_out(
    log: &super::log::Log,
    runner: Option<(u32, u32)>,
    env: &GitEnv,
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
    git(log, runner, env, checkout, &["init", "--quiet"]).await?;
    git(
        log,
        runner,
        env,
        checkout,
        &["remote", "add", "origin", "--", url],
    )
    .await?;
    let shallow = git(
        log,
        runner,
        env,
        checkout,
        &[
            "fetch",
            "--quiet",
            "--depth",
            &HISTORY.to_string(),
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
            env,
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
        env,
        checkout,
        &["checkout", "--quiet", "--detach", target],
    )
    .await?;
    Ok(())
}

/// Makes `home` (git's home for one clone or listing) and the environment every `git` there
/// runs with: its global configuration, and a connection's credentials when the action names
/// one (askpass variables for a token, an ssh wrapper for a key).
fn git_env(
    home: &Path,
    credentials: Option<&crate::ops::connections::Credentials>,
) -> Result<GitEnv, String> {
    let failed = |e: std::io::Error| format!("cannot make a work directory: {e}");
    std::fs::create_dir_all(home).map_err(failed)?;
    // Its only setting: clone repositories whoever owns them (a local repository belongs to
    // another user than the one clones run as).
    std::fs::write(home.join("gitconfig"), "[safe]\n\tdirectory = *\n").map_err(failed)?;
    Ok(GitEnv {
        extra: match credentials {
            Some(c) => match &c.auth {
                Auth::Token {
                    token,
                    ca_certificate,
                } => with_token(home, &c.username, token, ca_certificate.as_deref()),
                Auth::SshKey {
                    private_key,
                    known_hosts,
                    ..
                } => super::ssh::prepare(home, &c.username, private_key, known_hosts),
            }
            .map_err(failed)?,
            None => Vec::new(),
        },
        home: home.to_path_buf(),
    })
}

struct GitEnv {
    home: std::path::PathBuf,
    extra: Vec<(&'static str, String)>,
}

/// The askpass program git asks for a username and password over HTTPS: it answers from two
/// variables only `git` and it get, so the token is never in a URL, an argument (the process
/// list) or a file, and git stores it nowhere (no credential helper is configured). A
/// connection's CA certificate, when it has one, is the only authority git trusts.
fn with_token(
    home: &Path,
    username: &str,
    token: &str,
    ca_certificate: Option<&str>,
) -> std::io::Result<Vec<(&'static str, String)>> {
    use std::os::unix::fs::PermissionsExt;
    let askpass = home.join("askpass");
    std::fs::write(
        &askpass,
        "#!/bin/sh\ncase \"$1\" in\n  Username*) printf '%s\\n' \"$SLUICE_GIT_USERNAME\" ;;\n  *) printf '%s\\n' \"$SLUICE_GIT_TOKEN\" ;;\nesac\n",
    )?;
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700))?;
    let mut env = vec![
        ("GIT_ASKPASS", askpass.display().to_string()),
        ("SLUICE_GIT_USERNAME", username.to_string()),
        ("SLUICE_GIT_TOKEN", token.to_string()),
    ];
    if let Some(pem) = ca_certificate {
        let path = home.join("ca.pem");
        std::fs::write(&path, pem)?;
        env.push(("GIT_SSL_CAINFO", path.display().to_string()));
    }
    Ok(env)
}

/// The branches of a remote and their head commits (`git ls-remote --heads`), read as `runner`
/// with the same isolation as a clone: what polling asks each repository once per interval.
pub async fn ls_remote(
    url: &str,
    credentials: Option<&crate::ops::connections::Credentials>,
    runner: Option<(u32, u32)>,
) -> Result<std::collections::HashMap<String, String>, String> {
    if let Some(credentials) = credentials {
        credentials.fit(url)?;
    }
    let work = tempfile::tempdir().map_err(|e| format!("cannot make a work directory: {e}"))?;
    let home = work.path().join("home");
    let env = git_env(&home, credentials)?;
    super::hand_over(work.path(), runner)?;
    let log = super::log::Log::discarding();
    let out = git(
        &log,
        runner,
        &env,
        work.path(),
        &["ls-remote", "--heads", "--", url],
    )
    .await?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let (commit, name) = line.split_once('\t')?;
            Some((
                name.strip_prefix("refs/heads/")?.to_string(),
                commit.trim().to_string(),
            ))
        })
        .collect())
}

/// Runs `git` in `dir` with a clean environment, no prompts, no system configuration and a
/// global one of its own; its standard output, or its last lines of standard error. What it
/// writes to standard error goes to the log.
async fn git(
    log: &super::log::Log,
    runner: Option<(u32, u32)>,
    env: &GitEnv,
    dir: &Path,
    args: &[&str],
) -> Result<String, String> {
    let home = &env.home;
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
        .envs(env.extra.iter().map(|(k, v)| (*k, v.as_str())))
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
        Err(failure_of(&stderr))
    }
}

/// What a failed git said, in one line: its last three lines that say something (not blank,
/// nor the hint git adds to every failure to reach a remote, which would hide the cause: a
/// refused key, an unknown host key).
fn failure_of(stderr: &str) -> String {
    let telling: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && *l != "Please make sure you have the correct access rights"
                && *l != "and the repository exists."
        })
        .collect();
    telling[telling.len().saturating_sub(3)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_says_its_cause_not_gits_boilerplate() {
        let stderr = "Host key verification failed.\r\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n";
        assert_eq!(
            failure_of(stderr),
            "Host key verification failed. / fatal: Could not read from remote repository."
        );
        assert_eq!(failure_of("a\nb\nc\nd\n"), "b / c / d");
        assert_eq!(failure_of(""), "");
    }
}
