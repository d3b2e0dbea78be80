//! The data-directory lock: at most one Sluice process owns a data directory's cluster.
//!
//! The lock is an exclusive `flock` on `<data-dir>/sluice.lock`, held for the owner's lifetime. The
//! kernel drops it when the process dies, however it dies, so a crash never leaves a stale lock.
//! The file's content (the owner's PID) is only for messages.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use super::EmbeddedError;

/// Proof that this process owns the data directory. Dropping it releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// The outcome of trying to take the lock.
#[derive(Debug)]
pub enum LockAttempt {
    Acquired(DataDirLock),
    /// Another process holds it; its PID when it could be read.
    HeldBy(Option<u32>),
}

/// How long a held lock is retried before it counts as owned by someone else.
///
/// A `fork` anywhere in this process (a build command, `git`, another cluster's postmaster) copies
/// the lock's descriptor into the child until it calls `exec`; close-on-exec then drops it. On a
/// busy machine that window can last tens of milliseconds, and a lock just released by its owner can
/// look held by "us" meanwhile. A real owner holds it far longer than this.
const FORK_WINDOW: Duration = Duration::from_secs(2);

impl DataDirLock {
    /// Takes the lock, retrying briefly while it might only be held by a forked child of this
    /// process that has not yet exec'd (see [`FORK_WINDOW`]).
    pub async fn acquire(data_dir: &Path) -> Result<LockAttempt, EmbeddedError> {
        let deadline = Instant::now() + FORK_WINDOW;
        loop {
            match Self::try_acquire(data_dir)? {
                LockAttempt::HeldBy(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                attempt => return Ok(attempt),
            }
        }
    }

    /// Tries to take the lock without waiting.
    pub fn try_acquire(data_dir: &Path) -> Result<LockAttempt, EmbeddedError> {
        let path = data_dir.join("sluice.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| EmbeddedError::DataDir {
                path: path.clone(),
                action: "open",
                source,
            })?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut content = String::new();
                let _ = file.read_to_string(&mut content);
                return Ok(LockAttempt::HeldBy(content.trim().parse().ok()));
            }
            return Err(EmbeddedError::DataDir {
                path,
                action: "lock",
                source: err,
            });
        }
        let write_pid = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())?;
            file.flush()
        };
        write_pid(&mut file).map_err(|source| EmbeddedError::DataDir {
            path,
            action: "write",
            source,
        })?;
        Ok(LockAttempt::Acquired(DataDirLock { _file: file }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = match DataDirLock::try_acquire(dir.path()).unwrap() {
            LockAttempt::Acquired(lock) => lock,
            LockAttempt::HeldBy(_) => panic!("fresh directory must be free"),
        };
        match DataDirLock::try_acquire(dir.path()).unwrap() {
            LockAttempt::HeldBy(pid) => assert_eq!(pid, Some(std::process::id())),
            LockAttempt::Acquired(_) => panic!("flock must refuse a second holder"),
        }
        drop(first);
        assert!(matches!(
            DataDirLock::try_acquire(dir.path()).unwrap(),
            LockAttempt::Acquired(_)
        ));
    }
}
