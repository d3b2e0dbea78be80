//! Action providers: what runs an action of each built-in type on a worker, one module each.
//! A provider gets its action's resolved configuration and the pipeline's artifact key, and
//! returns its output variables and artifacts, or the summary of why it failed. Dropping a
//! provider's future stops its work (its processes are killed).

pub mod appspec;
pub mod buildspec;
pub mod command;
pub mod deploy;
pub mod git;
pub mod junit;
pub mod log;
pub mod process;
pub mod ssh;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::artifacts::sealed::DataKey;
use crate::artifacts::store::{Address, ArtifactStore, Stored};
use crate::pipeline::wire::ActionDeclaration;

/// What a provider works with.
pub struct Context {
    /// Which run this attempt belongs to (a deploy names its release after the execution).
    pub pipeline_name: String,
    pub pipeline_id: uuid::Uuid,
    pub stage_name: String,
    pub execution_id: uuid::Uuid,
    /// The attempt's own id (a webhook's job id).
    pub attempt_id: uuid::Uuid,
    pub action: ActionDeclaration,
    /// The configuration with its `#{…}` references resolved.
    pub configuration: BTreeMap<String, String>,
    /// The input artifacts, in declaration order: name and where it is stored.
    pub inputs: Vec<(String, Address)>,
    pub key: DataKey,
    pub store: Arc<ArtifactStore>,
    /// The largest artifact an action may produce.
    pub artifact_limit: u64,
    /// The source revision this attempt must produce (a source action pinned by a revision
    /// override or by an earlier attempt in the same execution).
    pub revision: Option<String>,
    /// Where the attempt's output goes.
    pub log: log::Log,
    /// Who the action's processes run as (see [`runner_named`]).
    pub runner: Runner,
    /// The credentials of the connection a Git action names, opened.
    pub git_credentials: Option<crate::ops::connections::Credentials>,
    /// Where this worker's deploys go: a TargetDirectory is taken inside it (`--deploy-root`).
    pub deploy_root: Option<std::path::PathBuf>,
    /// The client webhooks are called with (`None`: this process calls none).
    pub webhooks: Option<webhook::Client>,
    /// Makes signed links to the input artifacts (`None`: no server's URL is known).
    pub artifact_links: Option<crate::artifacts::links::Links>,
}

/// The user and group a provider's processes run as: `Ok(None)` for the worker's own user, or
/// why no build may run (the worker is root and the runner user does not exist).
pub type Runner = Result<Option<(u32, u32)>, String>;

/// What a successful attempt produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub summary: Option<String>,
    pub variables: BTreeMap<String, String>,
    /// Output artifact name → where it is stored.
    pub artifacts: Vec<(String, Stored)>,
    /// A source's commits behind the one it checked out, newest first (that one included).
    pub commits: Vec<SourceCommit>,
}

/// A commit a source saw: what an approval lists as promoted since the last one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceCommit {
    pub id: String,
    pub author: String,
    pub email: String,
    /// The subject line.
    pub message: String,
}

/// Runs one attempt; `Err` is the failure summary shown on the action.
pub async fn run(ctx: &Context) -> Result<Output, String> {
    let id = &ctx.action.action_type_id;
    match (
        id.category.as_str(),
        id.owner.as_str(),
        id.provider.as_str(),
        id.version.as_str(),
    ) {
        ("Source", "Sluice", "Git", "1") => git::run(ctx).await,
        ("Build" | "Test", "Sluice", "Command", "1") => command::run(ctx).await,
        ("Deploy", "Sluice", "Directory", "1") => deploy::run(ctx).await,
        ("Invoke", "Sluice", "Webhook", "1") => webhook::run(ctx).await,
        _ => Err(format!(
            "this Sluice cannot run {}/{}/{}/{} actions yet",
            id.category, id.owner, id.provider, id.version
        )),
    }
}

/// The environment every process a provider starts gets: nothing of the server's (no database
/// URL, master key or tokens), only what is needed to find programs and a home of its own.
pub fn clean_environment(home: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
        ("HOME", home.display().to_string()),
        ("LANG", "C.UTF-8".to_string()),
    ]
}

/// The runner user when `--runner-user` is not given.
pub const DEFAULT_RUNNER_USER: &str = "nobody";

/// The user builds run as: `name` (by default `nobody`) when the worker runs as root, so a build
/// can touch neither the server's files nor its data; the worker's own user otherwise (a
/// process that is not root cannot become anyone else).
pub fn runner_named(name: &str) -> Runner {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let Some((uid, gid)) = user_ids(name) else {
        return Err(format!(
            "the worker runs as root and there is no user {name} to run builds as (--runner-user)"
        ));
    };
    if uid == 0 {
        return Err(format!(
            "the runner user {name} is root; builds must run as an unprivileged user (--runner-user)"
        ));
    }
    Ok(Some((uid, gid)))
}

/// The user and group ids of the user `name`, if there is one.
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let c_name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a passwd is plain data; zeroed is a valid value for it.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; getpwnam_r writes only into `entry` and
    // `buffer`, whose size it is told.
    let rc = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    (rc == 0 && !found.is_null()).then_some((entry.pw_uid, entry.pw_gid))
}

/// Gives `dir` and everything under it to the runner, so its processes can work there.
pub fn hand_over(dir: &std::path::Path, ids: Option<(u32, u32)>) -> Result<(), String> {
    let Some((uid, gid)) = ids else { return Ok(()) };
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
            .map_err(|e| format!("cannot prepare {} for the build user: {e}", path.display()))?;
        if path.is_dir() && !path.is_symlink() {
            for entry in std::fs::read_dir(&path).map_err(|e| e.to_string())? {
                pending.push(entry.map_err(|e| e.to_string())?.path());
            }
        }
    }
    Ok(())
}
