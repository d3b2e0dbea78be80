//! The system user PostgreSQL runs as, and the file-system checks that go with it.
//!
//! PostgreSQL refuses to run as root. When Sluice runs as root, `initdb` and `postgres` run as an
//! unprivileged system user (normally `postgres`), which must own the cluster's directories and be
//! able to traverse every directory above them.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::EmbeddedError;

/// A system user that PostgreSQL processes are switched to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl OsUser {
    /// Looks a user up by name in the system's user database.
    pub fn lookup(name: &str) -> Option<Self> {
        let c_name = CString::new(name).ok()?;
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to live, correctly sized storage owned by this frame;
        // getpwnam_r writes only within `buf` and `pwd`.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 || result.is_null() {
            return None;
        }
        Some(Self {
            name: name.to_string(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        })
    }
}

/// Whether this process runs as root.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Changes the owner of `path` (not following symlinks).
pub fn chown(path: &Path, user: &OsUser) -> Result<(), EmbeddedError> {
    std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid)).map_err(|source| {
        EmbeddedError::DataDir {
            path: path.to_path_buf(),
            action: "change the owner of",
            source,
        }
    })
}

/// The first directory from `/` down to `dir` (inclusive) that `user` cannot traverse, if any.
pub fn first_untraversable(dir: &Path, user: &OsUser) -> Option<PathBuf> {
    let mut ancestors: Vec<&Path> = dir.ancestors().collect();
    ancestors.reverse();
    ancestors.into_iter().find_map(|d| {
        let meta = std::fs::metadata(d).ok()?;
        let mode = meta.mode();
        let can = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        (!can).then(|| d.to_path_buf())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn looks_up_root_and_rejects_unknown_users() {
        let root = OsUser::lookup("root").expect("root exists");
        assert_eq!(root.uid, 0);
        assert!(OsUser::lookup("no-such-user-sluice").is_none());
        assert!(OsUser::lookup("nul\0byte").is_none());
    }

    #[test]
    fn finds_the_directory_a_stranger_cannot_traverse() {
        let base = tempfile::tempdir().unwrap();
        let closed = base.path().join("closed");
        let inner = closed.join("inner");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let stranger = OsUser {
            name: "stranger".into(),
            uid: 4_000_000,
            gid: 4_000_000,
        };
        assert_eq!(first_untraversable(&inner, &stranger), Some(closed.clone()));
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).unwrap();
        assert_eq!(first_untraversable(&inner, &stranger), None);
    }
}
