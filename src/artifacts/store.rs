//! The artifact store on a local directory (`<data-dir>/artifacts` by default): sealed artifacts
//! kept under the SHA-256 of their stored bytes, written to a temporary file and renamed into
//! place, so a reader never sees half an artifact and a stored one never changes.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::sealed::{self, DataKey, OpenError};

/// Where an artifact lives: the hex SHA-256 of its stored (sealed) bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address(String);

impl Address {
    /// An address read back from storage; `None` unless it is 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Address> {
        (text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Address(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What [`LocalStore::put`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub address: Address,
    /// Bytes at rest.
    pub sealed_size: u64,
    /// Bytes of the zip.
    pub size: u64,
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn open(root: &Path) -> io::Result<LocalStore> {
        fs::create_dir_all(root.join("tmp"))?;
        fs::create_dir_all(root.join("sha256"))?;
        Ok(LocalStore {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, address: &Address) -> PathBuf {
        self.root
            .join("sha256")
            .join(&address.0[..2])
            .join(&address.0[2..])
    }

    /// Seals the zip `plain` (read from its start) with `key` and stores it.
    pub fn put(&self, key: &DataKey, plain: &mut File) -> io::Result<Stored> {
        plain.rewind()?;
        let tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        let (size, sealed_size, address) = {
            let mut out = Hashing {
                inner: io::BufWriter::new(tmp.as_file()),
                hash: Sha256::new(),
                written: 0,
            };
            let size = sealed::seal(key, &mut io::BufReader::new(&mut *plain), &mut out)?;
            out.flush()?;
            (size, out.written, Address(hex(&out.hash.finalize())))
        };
        tmp.as_file().sync_all()?;
        let path = self.path(&address);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(Stored {
            address,
            sealed_size,
            size,
        })
    }

    /// Opens a stored artifact into `plain`: its stored bytes must still hash to its address and
    /// authenticate under `key`.
    pub fn get(
        &self,
        key: &DataKey,
        address: &Address,
        plain: &mut File,
    ) -> Result<u64, OpenError> {
        let mut stored = File::open(self.path(address))?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stored.read(&mut buf)? {
                0 => break,
                n => hash.update(&buf[..n]),
            }
        }
        if hex(&hash.finalize()) != address.0 {
            return Err(OpenError::Tampered(0));
        }
        stored.rewind()?;
        plain.set_len(0)?;
        plain.rewind()?;
        let size = sealed::open(
            key,
            &mut io::BufReader::new(stored),
            &mut io::BufWriter::new(&mut *plain),
        )?;
        plain.rewind()?;
        Ok(size)
    }

    /// Removes a stored artifact (retention); absent is no error.
    pub fn delete(&self, address: &Address) -> io::Result<()> {
        match fs::remove_file(self.path(address)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(data: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        f
    }

    #[test]
    fn stored_artifacts_hold_no_plaintext_and_detect_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let key = DataKey::generate("pipeline-key-1");
        let secret = b"the build output: password=hunter2 ".repeat(5000);
        let stored = store.put(&key, &mut file_with(&secret)).unwrap();
        assert_eq!(stored.size, secret.len() as u64);
        let at_rest = fs::read(store.path(&stored.address)).unwrap();
        assert_eq!(at_rest.len() as u64, stored.sealed_size);
        assert!(
            !at_rest.windows(7).any(|w| w == b"hunter2"),
            "no plaintext at rest"
        );

        let mut out = tempfile::tempfile().unwrap();
        assert_eq!(
            store.get(&key, &stored.address, &mut out).unwrap(),
            secret.len() as u64
        );
        let mut back = Vec::new();
        out.read_to_end(&mut back).unwrap();
        assert_eq!(back, secret);

        // One flipped byte on disk: refused before any plaintext is trusted.
        let mut changed = at_rest.clone();
        changed[100] ^= 1;
        fs::write(store.path(&stored.address), &changed).unwrap();
        assert!(matches!(
            store.get(&key, &stored.address, &mut tempfile::tempfile().unwrap()),
            Err(OpenError::Tampered(_))
        ));
        store.delete(&stored.address).unwrap();
        store.delete(&stored.address).unwrap();
        assert!(Address::parse("ABC").is_none());
        assert_eq!(
            Address::parse(stored.address.as_str()),
            Some(stored.address.clone())
        );
    }
}
