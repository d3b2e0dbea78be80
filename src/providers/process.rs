//! Running a script of an action's: in a clean environment, as the runner user, in a process
//! group of its own led by a supervisor, so that a timeout, an abandoned attempt, a lost lease
//! or a dead worker (SIGKILL included) kills everything it started; its output (stdout and
//! stderr on one pipe, in the order written) goes to the attempt's log line by line.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::Command;

/// What to run.
pub struct Script<'a> {
    pub program: &'a Path,
    pub args: Vec<OsString>,
    pub cwd: &'a Path,
    /// The whole environment (nothing of the worker's is inherited).
    pub env: Vec<(String, String)>,
    /// Who it runs as (`None`: the worker's own user).
    pub runner: Option<(u32, u32)>,
    pub timeout: Duration,
}

/// Runs `script` to its end: `Some` with how it exited, or `None` when it outlived its timeout
/// (and was killed, with everything it started). `Err` when it could not be started.
pub async fn run(script: Script<'_>, log: &super::log::Log) -> Result<Option<ExitStatus>, String> {
    // One pipe for stdout and stderr, so lines keep the order the build wrote them in.
    let (reader, writer) =
        std::io::pipe().map_err(|e| format!("cannot open the process's output: {e}"))?;
    let mut command = Command::new(script.program);
    command
        .args(&script.args)
        .current_dir(script.cwd)
        .env_clear()
        .envs(script.env)
        .stdin(std::process::Stdio::null())
        .stdout(writer.try_clone().map_err(|e| e.to_string())?)
        .stderr(writer)
        .process_group(0)
        .kill_on_drop(true);
    if let Some((uid, gid)) = script.runner {
        command.uid(uid).gid(gid);
    }
    // SAFETY: getpid has no preconditions.
    let worker = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (see `supervise`).
    unsafe {
        command.pre_exec(move || supervise(worker));
    }
    let spawned = command.spawn();
    // Our copies of the pipe's write end go with the command, so the reader sees its end once
    // the script's processes are gone.
    drop(command);
    let mut child =
        spawned.map_err(|e| format!("cannot start {}: {e}", script.program.display()))?;
    let lines = log.clone();
    let reading = tokio::task::spawn_blocking(move || read_lines(reader, &lines));
    let leader = child.id().and_then(|id| i32::try_from(id).ok());
    // The group is killed while its leader is not yet reaped: until then its number cannot name
    // another process group (after, it could be reused by any new process).
    let guard = GroupGuard(leader);
    let ended = tokio::time::timeout(script.timeout, exited(leader)).await;
    drop(guard);
    let finished = child
        .wait()
        .await
        .map_err(|e| format!("the process could not be waited for: {e}"))?;
    // Every process of the group is dead, so the pipe ends; a process that left the group
    // (setsid) and kept the pipe open is not waited for.
    if tokio::time::timeout(Duration::from_secs(5), reading)
        .await
        .is_err()
    {
        log.line("[Sluice] a process that left its process group still holds its output");
    }
    Ok(ended.is_ok().then_some(finished))
}

/// Kills a process group when dropped (a build that ends early for any reason leaves nothing
/// running).
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) on a process group we created; no memory is touched.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// Makes the forked child a supervisor of the build: it forks once more, the grandchild goes on
/// to exec bash, and the child (the process group's leader) stays behind, waits for it and exits
/// as it did. If the worker dies, however it dies (SIGKILL included), the kernel sends the
/// supervisor SIGTERM (`PR_SET_PDEATHSIG`), and it kills the whole group: a crashed worker never
/// leaves a build running.
///
/// Runs between fork and exec in a child of a multi-threaded process: only async-signal-safe
/// calls (fork, prctl, getppid, sigaction, sigprocmask, close_range, waitpid, kill, _exit).
fn supervise(worker: libc::pid_t) -> std::io::Result<()> {
    extern "C" fn kill_group(_: libc::c_int) {
        // SAFETY: kill(2) is async-signal-safe; 0 names this process's group.
        unsafe {
            libc::kill(0, libc::SIGKILL);
        }
    }
    // SAFETY: see above; every call is async-signal-safe and touches only this process.
    unsafe {
        let build = libc::fork();
        if build < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if build == 0 {
            return Ok(());
        }
        // The supervisor: it must not hold the build's output pipe or std's exec-status pipe.
        if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) != 0 {
            for fd in 0..1024 {
                libc::close(fd);
            }
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = kill_group as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
        let mut unblock: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut unblock);
        libc::sigaddset(&mut unblock, libc::SIGTERM);
        libc::sigprocmask(libc::SIG_UNBLOCK, &unblock, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        // The worker may have died before the line above.
        if libc::getppid() != worker {
            kill_group(0);
        }
        let mut status = 0;
        loop {
            let rc = libc::waitpid(build, &mut status, 0);
            if rc == build {
                break;
            }
            if rc < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(127);
            }
        }
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        };
        libc::_exit(code);
    }
}

/// Waits until the process `pid` has exited, without reaping it (so its process group keeps its
/// number until [`GroupGuard`] has killed what is left of it).
async fn exited(pid: Option<i32>) {
    let Some(pid) = pid.and_then(|p| u32::try_from(p).ok()) else {
        return;
    };
    let mut pause = Duration::from_millis(1);
    loop {
        // SAFETY: waitid writes only into `info`; WNOWAIT leaves the child to be reaped later.
        let (rc, reported) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let rc = libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
            );
            (rc, info.si_pid())
        };
        if rc != 0 || reported != 0 {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Copies a process's output into its log, line by line, until every writer has closed the pipe.
fn read_lines(reader: std::io::PipeReader, log: &super::log::Log) {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                log.line(text.strip_suffix('\n').unwrap_or(&text));
            }
        }
    }
}
