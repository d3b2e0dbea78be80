//! Finding the PostgreSQL server binaries (`initdb`, `postgres`).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::EmbeddedError;

/// A directory known to hold both `initdb` and `postgres`.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    bindir: PathBuf,
}

impl PgBinaries {
    /// Finds the binaries: the explicit directory if given (and nothing else then), else
    /// `pg_config --bindir`, else the highest `/usr/lib/postgresql/*/bin`, else `PATH`.
    pub fn locate(explicit: Option<&Path>, path_var: Option<&str>) -> Result<Self, EmbeddedError> {
        if let Some(dir) = explicit {
            return Self::in_dir(dir).ok_or_else(|| EmbeddedError::MissingBinaries {
                searched: vec![dir.to_path_buf()],
            });
        }
        let mut searched = Vec::new();
        let candidates = pg_config_bindir()
            .into_iter()
            .chain(debian_bindirs(Path::new("/usr/lib/postgresql")))
            .chain(path_var.into_iter().flat_map(|p| {
                std::env::split_paths(p)
                    .filter(|d| d.is_absolute())
                    .collect::<Vec<_>>()
            }));
        for dir in candidates {
            if let Some(found) = Self::in_dir(&dir) {
                return Ok(found);
            }
            searched.push(dir);
        }
        Err(EmbeddedError::MissingBinaries { searched })
    }

    fn in_dir(dir: &Path) -> Option<Self> {
        let has = |name: &str| is_executable(&dir.join(name));
        (has("initdb") && has("postgres")).then(|| Self {
            bindir: dir.to_path_buf(),
        })
    }

    /// The directory the binaries are in.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    pub(super) fn initdb(&self) -> PathBuf {
        self.bindir.join("initdb")
    }

    pub(super) fn postgres(&self) -> PathBuf {
        self.bindir.join("postgres")
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    let dir = dir.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// Debian's layout: `/usr/lib/postgresql/<major>/bin`, highest major first.
fn debian_bindirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_directory_without_binaries_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = PgBinaries::locate(Some(dir.path()), None).unwrap_err();
        match err {
            EmbeddedError::MissingBinaries { searched } => assert_eq!(searched, vec![dir.path()]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn debian_layout_prefers_the_highest_major() {
        let root = tempfile::tempdir().unwrap();
        for v in ["9", "15", "13", "notaversion"] {
            std::fs::create_dir_all(root.path().join(v).join("bin")).unwrap();
        }
        let dirs = debian_bindirs(root.path());
        let majors: Vec<_> = dirs
            .iter()
            .map(|d| {
                d.parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(majors, ["15", "13", "9"]);
    }
}
