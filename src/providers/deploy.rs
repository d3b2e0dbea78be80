//! Directory deploy (`Deploy/Sluice/Directory/1`, CodeDeploy's in-place role) on this host:
//! the input artifact becomes `TargetDirectory/releases/<execution id>`, the release's
//! `appspec.yml` hooks run around the switch of `TargetDirectory/current` (a symbolic link,
//! replaced atomically by a rename), and `KeepReleases` earlier releases are kept.
//!
//! In order: the replaced release's ApplicationStop, BeforeInstall, the switch, AfterInstall,
//! ApplicationStart, ValidateService. A hook that fails after the replaced release was stopped
//! puts it back: `current` points at it again and its ApplicationStart runs, so the host serves
//! what it served before. Hooks run like Command builds: a clean environment, the runner user,
//! a process group that a timeout or a stop kills whole. Deploys to one target directory on one
//! host take turns (a lock file); the releases Sluice made are listed in `.sluice-releases`, so
//! nothing else in the directory is ever deleted.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::appspec::{self, AppSpec, Hook, HookScript};
use super::{Context, Output, clean_environment, process};
use crate::artifacts::archive;

/// Earlier releases kept when the action does not say.
pub const DEFAULT_KEEP_RELEASES: usize = 5;
/// The list of releases Sluice made in a target directory, oldest first.
const RELEASES_LIST: &str = ".sluice-releases";
const LOCK_FILE: &str = ".sluice-lock";

/// What a deploy on this host did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// The release now current.
    pub release: String,
    /// The release it replaced (`None`: nothing was deployed before).
    pub previous: Option<String>,
    pub summary: String,
}

/// The action on whichever worker claimed it.
pub async fn run(ctx: &Context) -> Result<Output, String> {
    let deployed = deploy_here(ctx, 0).await?;
    Ok(Output {
        summary: Some(deployed.summary),
        ..Output::default()
    })
}

/// The target directory on this host: `TargetDirectory`, inside the worker's `--deploy-root`
/// when it has one (several workers on one machine, or a host whose deploys go in a mount).
fn target_of(ctx: &Context) -> Result<PathBuf, String> {
    let target = PathBuf::from(
        ctx.configuration
            .get("TargetDirectory")
            .ok_or("a directory deploy needs its TargetDirectory")?,
    );
    if !target.is_absolute()
        || target
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(format!(
            "the TargetDirectory {} must be an absolute path without ..",
            target.display()
        ));
    }
    Ok(match &ctx.deploy_root {
        Some(root) => root.join(target.strip_prefix("/").unwrap_or(&target)),
        None => target,
    })
}

/// Deploys the input artifact on this host, keeping at least `min_keep` earlier releases (a
/// rollout keeps the one it replaced, to switch back to).
pub async fn deploy_here(ctx: &Context, min_keep: usize) -> Result<Deployed, String> {
    let target = target_of(ctx)?;
    let keep = match ctx.configuration.get("KeepReleases") {
        Some(n) => n
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= 100)
            .ok_or(format!(
                "KeepReleases must be a number from 0 to 100, not {n:?}"
            ))?,
        None => DEFAULT_KEEP_RELEASES,
    }
    .max(min_keep);
    let runner = ctx.runner.clone()?;
    let (input, address) = ctx
        .inputs
        .first()
        .ok_or("a directory deploy needs an input artifact")?;
    let (zip, _) = ctx
        .store
        .get(&ctx.key, address)
        .await
        .map_err(|e| format!("the input artifact {input} cannot be read: {e}"))?;

    let _lock = lock(&target, &ctx.log).await?;
    let layout = Layout::new(target.clone());
    let release = {
        let (layout, limit) = (layout.clone(), ctx.artifact_limit);
        let id = ctx.execution_id.to_string();
        tokio::task::spawn_blocking(move || layout.unpack(&id, zip, limit))
            .await
            .map_err(|e| format!("unpacking the release failed: {e}"))??
    };
    super::hand_over(&layout.release(&release), runner)?;
    ctx.log.line(&format!(
        "[Sluice] release {release} unpacked into {}",
        layout.release(&release).display()
    ));
    let home = tempfile::tempdir().map_err(|e| format!("cannot make a home for hooks: {e}"))?;
    super::hand_over(home.path(), runner)?;
    let hooks = Hooks {
        ctx,
        layout: &layout,
        runner,
        home: home.path(),
        timings: Vec::new(),
    };
    let outcome = deploy(hooks, &release).await;
    match outcome {
        Ok((timings, previous)) => {
            let removed = prune(&layout, keep).unwrap_or_else(|e| {
                ctx.log
                    .line(&format!("[Sluice] old releases were not removed: {e}"));
                Vec::new()
            });
            for name in removed {
                ctx.log
                    .line(&format!("[Sluice] removed the old release {name}"));
            }
            let mut summary = format!("Deployed release {release} to {}", target.display());
            if !timings.is_empty() {
                summary.push_str(&format!(" ({})", timings.join(", ")));
            }
            Ok(Deployed {
                release,
                previous,
                summary,
            })
        }
        Err(why) => Err(format!("{why}{}", ctx.log.tail_summary())),
    }
}

/// Switches this host back from `release` (which a rollout deployed) to `previous`: the new
/// release's ApplicationStop, the switch, the previous release's ApplicationStart, and the new
/// release removed. Refused when `current` is no longer `release` (someone deployed since). What
/// it did, or why it could not.
pub async fn roll_back(
    ctx: &Context,
    release: &str,
    previous: Option<&str>,
) -> Result<String, String> {
    let target = target_of(ctx)?;
    let runner = ctx.runner.clone()?;
    let _lock = lock(&target, &ctx.log).await?;
    let layout = Layout::new(target.clone());
    let current = layout.current_release()?;
    if current.as_deref() != Some(release) {
        return Err(format!(
            "not switched back: current is no longer release {release} (it is {}), so it is left as it is",
            current.as_deref().unwrap_or("nothing")
        ));
    }
    if let Some(p) = previous
        && !layout.release(p).is_dir()
    {
        return Err(format!(
            "not switched back: the release {p} it replaced is no longer in {}",
            layout.releases().display()
        ));
    }
    let home = tempfile::tempdir().map_err(|e| format!("cannot make a home for hooks: {e}"))?;
    super::hand_over(home.path(), runner)?;
    let mut hooks = Hooks {
        ctx,
        layout: &layout,
        runner,
        home: home.path(),
        timings: Vec::new(),
    };
    let spec = read_appspec(&layout.release(release))
        .ok()
        .flatten()
        .unwrap_or_default();
    // Stopping the new release may fail; switching back matters more.
    if let Err(why) = hooks.run(Hook::ApplicationStop, release, &spec).await {
        ctx.log.line(&format!(
            "[Sluice] stopping release {release} failed ({why}); switching back anyway"
        ));
    }
    let previous = previous.map(|p| {
        let spec = read_appspec(&layout.release(p))
            .ok()
            .flatten()
            .unwrap_or_default();
        (p.to_string(), spec)
    });
    back(&mut hooks, previous.as_ref(), release, true).await
}

/// The paths of a target directory.
#[derive(Clone)]
struct Layout {
    target: PathBuf,
}

impl Layout {
    fn new(target: PathBuf) -> Self {
        Layout { target }
    }

    fn releases(&self) -> PathBuf {
        self.target.join("releases")
    }

    fn release(&self, name: &str) -> PathBuf {
        self.releases().join(name)
    }

    fn current(&self) -> PathBuf {
        self.target.join("current")
    }

    /// The release `current` points at, if it points at one of `releases/`.
    fn current_release(&self) -> Result<Option<String>, String> {
        let link = self.current();
        match fs::symlink_metadata(&link) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot look at {}: {e}", link.display())),
            Ok(meta) if !meta.file_type().is_symlink() => {
                return Err(format!(
                    "{} exists and is not a link; move it away so that Sluice can manage it",
                    link.display()
                ));
            }
            Ok(_) => {}
        }
        let to = fs::read_link(&link).map_err(|e| e.to_string())?;
        let name = to
            .strip_prefix("releases")
            .ok()
            .and_then(|rest| rest.to_str())
            .filter(|n| !n.is_empty() && !n.contains('/'))
            .map(str::to_string);
        Ok(name.filter(|n| self.release(n).is_dir()))
    }

    /// Unpacks the artifact as a new release named after the execution (a retry whose release is
    /// the current one gets `-2`, `-3` …; one that is not current is unpacked afresh).
    fn unpack(&self, execution: &str, zip: fs::File, limit: u64) -> Result<String, String> {
        let releases = self.releases();
        fs::create_dir_all(&releases)
            .map_err(|e| format!("cannot make {}: {e}", releases.display()))?;
        let current = self.current_release()?;
        let mut name = execution.to_string();
        let mut n = 1;
        while current.as_deref() == Some(name.as_str()) {
            n += 1;
            name = format!("{execution}-{n}");
        }
        let incoming = releases.join(format!(".incoming-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir(&incoming)
            .map_err(|e| format!("cannot make {}: {e}", incoming.display()))?;
        if let Err(e) = archive::unzip_into(zip, &incoming, limit) {
            let _ = fs::remove_dir_all(&incoming);
            return Err(format!("the artifact cannot be unpacked: {e}"));
        }
        let dest = self.release(&name);
        if dest.exists() {
            fs::remove_dir_all(&dest)
                .map_err(|e| format!("cannot replace {}: {e}", dest.display()))?;
        }
        fs::rename(&incoming, &dest).map_err(|e| format!("cannot place the release: {e}"))?;
        let mut list = self.list()?;
        list.retain(|r| *r != name);
        list.push(name.clone());
        self.write_list(&list)?;
        Ok(name)
    }

    /// Points `current` at `release`, atomically: a new link renamed over the old one.
    fn switch(&self, release: &str) -> Result<(), String> {
        let temp = self
            .target
            .join(format!(".current-{}", uuid::Uuid::new_v4().simple()));
        std::os::unix::fs::symlink(Path::new("releases").join(release), &temp)
            .map_err(|e| format!("cannot make the current link: {e}"))?;
        fs::rename(&temp, self.current()).map_err(|e| {
            let _ = fs::remove_file(&temp);
            format!("cannot switch the current link: {e}")
        })
    }

    /// Takes `current` away (a first release that failed: nothing was served before).
    fn unswitch(&self) -> Result<(), String> {
        match fs::remove_file(self.current()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("cannot remove the current link: {e}"))
            }
            _ => Ok(()),
        }
    }

    fn list(&self) -> Result<Vec<String>, String> {
        match fs::read_to_string(self.target.join(RELEASES_LIST)) {
            Ok(text) => Ok(text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("cannot read {RELEASES_LIST}: {e}")),
        }
    }

    fn write_list(&self, list: &[String]) -> Result<(), String> {
        let path = self.target.join(RELEASES_LIST);
        let temp = self
            .target
            .join(format!("{RELEASES_LIST}.{}", uuid::Uuid::new_v4().simple()));
        let mut file = fs::File::create(&temp).map_err(|e| e.to_string())?;
        for name in list {
            writeln!(file, "{name}").map_err(|e| e.to_string())?;
        }
        file.sync_all().map_err(|e| e.to_string())?;
        fs::rename(&temp, &path).map_err(|e| format!("cannot write {RELEASES_LIST}: {e}"))
    }

    /// Removes a release that never served (its deploy failed before or at the switch back).
    fn discard(&self, release: &str) {
        let _ = fs::remove_dir_all(self.release(release));
        if let Ok(mut list) = self.list() {
            list.retain(|r| r != release);
            let _ = self.write_list(&list);
        }
    }
}

/// Which releases to remove so that `keep` besides the current one stay: the oldest first, never
/// the current one.
pub fn to_remove(list: &[String], current: Option<&str>, keep: usize) -> Vec<String> {
    let earlier: Vec<&String> = list
        .iter()
        .filter(|r| Some(r.as_str()) != current)
        .collect();
    let excess = earlier.len().saturating_sub(keep);
    earlier.into_iter().take(excess).cloned().collect()
}

fn prune(layout: &Layout, keep: usize) -> Result<Vec<String>, String> {
    let list = layout.list()?;
    let current = layout.current_release()?;
    let remove = to_remove(&list, current.as_deref(), keep);
    for name in &remove {
        let dir = layout.release(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    let left: Vec<String> = list.into_iter().filter(|r| !remove.contains(r)).collect();
    layout.write_list(&left)?;
    Ok(remove)
}

/// Waits for any other deploy to the same directory on this host to end.
async fn lock(target: &Path, log: &super::log::Log) -> Result<fs::File, String> {
    fs::create_dir_all(target).map_err(|e| format!("cannot make {}: {e}", target.display()))?;
    let path = target.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut said = false;
    loop {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; released when the file is closed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(file);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
        if !said {
            log.line(&format!(
                "[Sluice] waiting for another deploy to {} to end",
                target.display()
            ));
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a release's hook scripts.
struct Hooks<'a> {
    ctx: &'a Context,
    layout: &'a Layout,
    runner: Option<(u32, u32)>,
    home: &'a Path,
    /// "BeforeInstall 0.2 s" for each hook run, for the summary.
    timings: Vec<String>,
}

impl Hooks<'_> {
    /// Runs `hook`'s scripts of `release` (whose AppSpec is `spec`) one after another.
    async fn run(&mut self, hook: Hook, release: &str, spec: &AppSpec) -> Result<(), String> {
        let scripts = spec.scripts(hook);
        if scripts.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        for script in scripts {
            self.script(hook, release, script).await?;
        }
        self.timings.push(format!(
            "{} {:.1} s",
            hook.name(),
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    async fn script(
        &mut self,
        hook: Hook,
        release: &str,
        script: &HookScript,
    ) -> Result<(), String> {
        let name = hook.name();
        let root = self.layout.release(release);
        let path = located(&root, &script.location)
            .map_err(|why| format!("{name}: {}: {why}", script.location))?;
        self.allowed_runas(script)
            .map_err(|why| format!("{name}: {}: {why}", script.location))?;
        let executable = fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        let (program, args): (PathBuf, Vec<OsString>) = if executable {
            (path.clone(), Vec::new())
        } else {
            (
                PathBuf::from("bash"),
                vec!["--noprofile".into(), "--norc".into(), path.clone().into()],
            )
        };
        let ctx = self.ctx;
        let mut env: Vec<(String, String)> = clean_environment(self.home)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        env.extend([
            ("LIFECYCLE_EVENT".into(), name.to_string()),
            ("DEPLOYMENT_ID".into(), ctx.execution_id.to_string()),
            ("APPLICATION_NAME".into(), ctx.pipeline_name.clone()),
            ("SLUICE_RELEASE".into(), release.to_string()),
            ("SLUICE_RELEASE_DIR".into(), root.display().to_string()),
            (
                "SLUICE_TARGET_DIR".into(),
                self.layout.target.display().to_string(),
            ),
        ]);
        ctx.log
            .line(&format!("[Sluice] {name}: {} ({release})", script.location));
        let started = Instant::now();
        let ended = process::run(
            process::Script {
                program: &program,
                args,
                cwd: &root,
                env,
                runner: self.runner,
                timeout: script.timeout,
            },
            &ctx.log,
        )
        .await
        .map_err(|why| format!("{name}: {}: {why}", script.location))?;
        let took = started.elapsed().as_secs_f64();
        match ended {
            None => Err(format!(
                "{name}: {} took longer than its timeout of {} s and was stopped",
                script.location,
                script.timeout.as_secs()
            )),
            Some(status) if !status.success() => Err(format!(
                "{name}: {} exited with {}",
                script.location,
                status
                    .code()
                    .map_or_else(|| status.to_string(), |c| c.to_string())
            )),
            Some(_) => {
                ctx.log.line(&format!(
                    "[Sluice] {name}: {} finished in {took:.1} s",
                    script.location
                ));
                Ok(())
            }
        }
    }

    /// Hooks run as the runner user, like builds; `runas` may only name that user, so that
    /// whoever edits a pipeline cannot run scripts on a host as anyone else.
    fn allowed_runas(&self, script: &HookScript) -> Result<(), String> {
        let Some(user) = &script.runas else {
            return Ok(());
        };
        // SAFETY: geteuid has no preconditions.
        let runs_as = self
            .runner
            .map_or_else(|| unsafe { libc::geteuid() }, |(uid, _)| uid);
        match super::user_ids(user) {
            Some((uid, _)) if uid == runs_as => Ok(()),
            _ => Err(format!(
                "runas {user}: hooks run as this worker's runner user; start the worker with --runner-user {user} to run them as {user}"
            )),
        }
    }
}

/// A hook's script inside the release: it must exist, be a file, and (links resolved) stay
/// inside the release.
fn located(root: &Path, location: &str) -> Result<PathBuf, String> {
    let path = root.join(location);
    let real = path
        .canonicalize()
        .map_err(|_| "no such file in the release".to_string())?;
    let real_root = root.canonicalize().map_err(|e| e.to_string())?;
    if !real.starts_with(&real_root) {
        return Err("it leads outside the release".into());
    }
    if !real.is_file() {
        return Err("it is not a file".into());
    }
    Ok(real)
}

/// A release's AppSpec: `Ok(None)` when it has none (nothing to run, only the switch).
fn read_appspec(root: &Path) -> Result<Option<AppSpec>, String> {
    for name in ["appspec.yml", "appspec.yaml"] {
        match fs::read_to_string(root.join(name)) {
            Ok(text) => return appspec::parse(&text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{name} cannot be read: {e}")),
        }
    }
    Ok(None)
}

/// The deploy proper, once the release is unpacked: the hook timings and the release it
/// replaced, or why it failed (with the host put back as it was).
async fn deploy(
    mut hooks: Hooks<'_>,
    release: &str,
) -> Result<(Vec<String>, Option<String>), String> {
    let (layout, ctx) = (hooks.layout, hooks.ctx);
    let log = &ctx.log;
    let spec = match read_appspec(&layout.release(release)) {
        Ok(spec) => spec.unwrap_or_default(),
        Err(why) => {
            layout.discard(release);
            return Err(why);
        }
    };
    for ignored in &spec.ignored {
        log.line(&format!(
            "[Sluice] appspec.yml: {ignored} is not used (the whole artifact is the release)"
        ));
    }
    let previous = match layout.current_release() {
        Ok(previous) => previous,
        Err(why) => {
            layout.discard(release);
            return Err(why);
        }
    };
    // The replaced release's own AppSpec says how to stop it (CodeDeploy's ApplicationStop).
    let previous_spec = match &previous {
        Some(p) => match read_appspec(&layout.release(p)) {
            Ok(spec) => Some((p.clone(), spec.unwrap_or_default())),
            Err(why) => {
                log.line(&format!(
                    "[Sluice] the current release {p}'s appspec.yml is not used: {why}"
                ));
                Some((p.clone(), AppSpec::default()))
            }
        },
        None => None,
    };
    let mut stopped = false;
    if let Some((p, pspec)) = &previous_spec {
        stopped = !pspec.scripts(Hook::ApplicationStop).is_empty();
        if let Err(why) = hooks.run(Hook::ApplicationStop, p, pspec).await {
            // It may be half stopped: start it again.
            put_back(&mut hooks, previous_spec.as_ref(), release, true).await;
            return Err(why);
        }
    }
    if let Err(why) = hooks.run(Hook::BeforeInstall, release, &spec).await {
        put_back(&mut hooks, previous_spec.as_ref(), release, stopped).await;
        return Err(why);
    }
    if let Err(why) = layout.switch(release) {
        put_back(&mut hooks, previous_spec.as_ref(), release, stopped).await;
        return Err(why);
    }
    log.line(&format!("[Sluice] current -> releases/{release}"));
    for hook in [
        Hook::AfterInstall,
        Hook::ApplicationStart,
        Hook::ValidateService,
    ] {
        if let Err(why) = hooks.run(hook, release, &spec).await {
            let back = put_back(&mut hooks, previous_spec.as_ref(), release, true).await;
            return Err(format!("{why}; {back}"));
        }
    }
    Ok((hooks.timings, previous))
}

/// Puts the host back as it was before this deploy: `current` at the replaced release again,
/// started again with its ApplicationStart if it had been stopped or replaced (`restart`), and
/// the new release removed. What it did, for the failure's summary.
async fn put_back(
    hooks: &mut Hooks<'_>,
    previous: Option<&(String, AppSpec)>,
    release: &str,
    restart: bool,
) -> String {
    match back(hooks, previous, release, restart).await {
        Ok(said) | Err(said) => said,
    }
}

/// [`put_back`], `Err` when the host may not serve what it served before.
async fn back(
    hooks: &mut Hooks<'_>,
    previous: Option<&(String, AppSpec)>,
    release: &str,
    restart: bool,
) -> Result<String, String> {
    let (layout, ctx) = (hooks.layout, hooks.ctx);
    let log = &ctx.log;
    let said = match previous {
        Some((p, pspec)) => match layout.switch(p) {
            Err(e) => Err(format!("could not switch back to release {p}: {e}")),
            Ok(()) => {
                log.line(&format!("[Sluice] switched back to release {p}"));
                let said = format!("switched back to release {p}");
                if restart && !pspec.scripts(Hook::ApplicationStart).is_empty() {
                    match hooks.run(Hook::ApplicationStart, p, pspec).await {
                        Err(why) => {
                            log.line(&format!("[Sluice] starting {p} again failed: {why}"));
                            Err(format!("{said}, and starting it again failed ({why})"))
                        }
                        Ok(()) => Ok(format!("{said} and started it again")),
                    }
                } else {
                    Ok(said)
                }
            }
        },
        None => match layout.unswitch() {
            Ok(()) => Ok("nothing was deployed before, so current is removed".to_string()),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = &said {
        log.line(&format!("[Sluice] {e}"));
    } else if previous.is_none() {
        log.line("[Sluice] nothing was deployed before, so current is removed");
    }
    layout.discard(release);
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pruning_keeps_the_current_release_and_the_newest_earlier_ones() {
        let list = names(&["a", "b", "c", "d"]);
        assert_eq!(to_remove(&list, Some("d"), 2), names(&["a"]));
        assert_eq!(to_remove(&list, Some("d"), 0), names(&["a", "b", "c"]));
        // The current one is never removed, wherever it is in the list.
        assert_eq!(to_remove(&list, Some("a"), 1), names(&["b", "c"]));
        assert_eq!(to_remove(&list, None, 5), Vec::<String>::new());
        assert_eq!(to_remove(&list, None, 1), names(&["a", "b", "c"]));
    }

    #[test]
    fn a_retry_of_the_current_release_gets_a_name_of_its_own_and_the_switch_is_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_path_buf());
        let zip = |files: &[(&str, &str)]| {
            let src = tempfile::tempdir().unwrap();
            for (name, text) in files {
                fs::write(src.path().join(name), text).unwrap();
            }
            let mut zip = tempfile::tempfile().unwrap();
            archive::zip_directory(src.path(), &mut zip, 1 << 20).unwrap();
            use std::io::Seek;
            zip.rewind().unwrap();
            zip
        };
        let first = layout.unpack("e1", zip(&[("a", "1")]), 1 << 20).unwrap();
        assert_eq!(first, "e1");
        assert_eq!(layout.current_release().unwrap(), None);
        layout.switch(&first).unwrap();
        assert_eq!(
            fs::read_link(layout.current()).unwrap(),
            Path::new("releases/e1")
        );
        assert_eq!(layout.current_release().unwrap().as_deref(), Some("e1"));
        let again = layout.unpack("e1", zip(&[("a", "2")]), 1 << 20).unwrap();
        assert_eq!(again, "e1-2");
        assert_eq!(fs::read_to_string(layout.current().join("a")).unwrap(), "1");
        assert_eq!(layout.list().unwrap(), names(&["e1", "e1-2"]));
        // A directory where the link belongs is not Sluice's to replace.
        let other = tempfile::tempdir().unwrap();
        fs::create_dir(other.path().join("current")).unwrap();
        let err = Layout::new(other.path().to_path_buf())
            .current_release()
            .unwrap_err();
        assert!(err.contains("is not a link"), "{err}");
    }
}
