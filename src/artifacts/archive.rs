//! Artifacts are zip files, as CodePipeline's are: a directory zipped (without `.git`), and a zip
//! extracted into a fresh directory. Extraction never writes outside its directory: entries whose
//! names climb out (`../`, absolute paths) and links are refused.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

/// Why an archive could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the artifact is not a readable zip file")]
    NotAZip,
    #[error("the artifact's entry {0:?} would be written outside its directory")]
    Escapes(String),
    #[error("the artifact holds a link ({0:?}); links are not extracted")]
    Link(String),
    #[error("the artifact is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<zip::result::ZipError> for ArchiveError {
    fn from(e: zip::result::ZipError) -> Self {
        match e {
            zip::result::ZipError::Io(e) => ArchiveError::Io(e),
            _ => ArchiveError::NotAZip,
        }
    }
}

/// Every regular file under `root`, as paths relative to it, sorted (so the same tree makes the
/// same archive). `.git` directories are left out; links are left out (their targets may lie
/// outside the tree).
fn files(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(root.join(&dir))? {
            let entry = entry?;
            let name = entry.file_name();
            let relative = dir.join(&name);
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if name != ".git" {
                    pending.push(relative);
                }
            } else if kind.is_file() {
                out.push(relative);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Zips the files under `root` into `out` (deflated, keeping the executable bit), refusing to
/// go past `limit` bytes of input.
pub fn zip_directory(root: &Path, out: &mut File, limit: u64) -> Result<u64, ArchiveError> {
    let mut zip = ZipWriter::new(out);
    let mut total = 0u64;
    for relative in files(root)? {
        let path = root.join(&relative);
        let meta = fs::metadata(&path)?;
        total += meta.len();
        if total > limit {
            return Err(ArchiveError::TooLarge(limit));
        }
        let name = relative.to_string_lossy().replace('\\', "/");
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .unix_permissions(mode)
            .large_file(meta.len() >= u64::from(u32::MAX));
        zip.start_file(name, options)?;
        io::copy(&mut File::open(&path)?, &mut zip)?;
    }
    zip.finish()?.flush()?;
    Ok(total)
}

/// Extracts `archive` into `dest` (which must exist and should be empty), refusing entries that
/// would leave it, links, and more than `limit` bytes in all.
pub fn unzip_into(archive: File, dest: &Path, limit: u64) -> Result<u64, ArchiveError> {
    let mut zip = ZipArchive::new(archive)?;
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i)?;
        let raw = entry.name().map(|n| n.to_string()).unwrap_or_default();
        let relative = entry
            .enclosed_name()
            .ok_or_else(|| ArchiveError::Escapes(raw.clone()))?;
        if entry.is_symlink() {
            return Err(ArchiveError::Link(raw));
        }
        let path = dest.join(&relative);
        if entry.is_dir() {
            fs::create_dir_all(&path)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut file = File::create(&path)?;
        let remaining = limit.saturating_sub(total);
        let written = io::copy(&mut Read::take(&mut entry, remaining + 1), &mut file)?;
        total += written;
        if total > limit {
            return Err(ArchiveError::TooLarge(limit));
        }
        if let Some(mode) = entry.unix_mode()
            && mode & 0o111 != 0
        {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_round_trips_without_git_or_links_and_keeps_the_executable_bit() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("bin")).unwrap();
        fs::create_dir_all(src.path().join(".git/objects")).unwrap();
        fs::write(src.path().join("README"), "hello\n").unwrap();
        fs::write(src.path().join(".git/HEAD"), "ref").unwrap();
        fs::write(src.path().join("bin/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(
            src.path().join("bin/run.sh"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("passwd")).unwrap();
        let mut zip = tempfile::tempfile().unwrap();
        assert_eq!(
            zip_directory(src.path(), &mut zip, 1 << 20).unwrap(),
            6 + 18
        );
        let dest = tempfile::tempdir().unwrap();
        unzip_into(zip, dest.path(), 1 << 20).unwrap();
        let mut text = String::new();
        File::open(dest.path().join("README"))
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "hello\n");
        let mode = fs::metadata(dest.path().join("bin/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert!(!dest.path().join(".git").exists());
        assert!(!dest.path().join("passwd").exists());
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        {
            let mut zip = ZipWriter::new(&mut file);
            for (name, body) in entries {
                zip.start_file(*name, SimpleFileOptions::default()).unwrap();
                zip.write_all(body).unwrap();
            }
            zip.finish().unwrap();
        }
        use std::io::Seek;
        file.rewind().unwrap();
        file
    }

    #[test]
    fn extraction_stays_inside_and_within_the_limit() {
        let dest = tempfile::tempdir().unwrap();
        for name in ["../escape.txt", "a/../../up"] {
            let r = unzip_into(zip_of(&[(name, b"x")]), dest.path(), 100);
            assert!(matches!(r, Err(ArchiveError::Escapes(_))), "{name}: {r:?}");
        }
        // An absolute name lands inside the directory, never at its absolute path.
        unzip_into(
            zip_of(&[("/tmp/sluice-zip-absolute", b"x")]),
            dest.path(),
            100,
        )
        .unwrap();
        assert!(dest.path().join("tmp/sluice-zip-absolute").exists());
        assert!(!Path::new("/tmp/sluice-zip-absolute").exists());
        let big = vec![0u8; 1000];
        let r = unzip_into(zip_of(&[("big", &big)]), dest.path(), 100);
        assert!(matches!(r, Err(ArchiveError::TooLarge(100))), "{r:?}");
        let r = unzip_into(tempfile::tempfile().unwrap(), dest.path(), 100);
        assert!(matches!(r, Err(ArchiveError::NotAZip)), "{r:?}");
    }
}
