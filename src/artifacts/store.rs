//! The artifact store, through `object_store`: a local directory (`<data-dir>/artifacts` by
//! default) or an S3-compatible bucket (`s3://bucket/prefix`, credentials and endpoint from the
//! usual `AWS_*` environment variables). Artifacts are sealed into a scratch file, kept under the
//! SHA-256 of their sealed bytes (`sha256/ab/cdef…`), and uploaded in parts, so nothing is ever
//! whole in memory; a stored object never changes, and a reader checks both the hash and every
//! chunk's tag before it trusts a byte.

use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::sealed::{self, DataKey, OpenError};
use crate::config::{ArtifactLocation, S3Options};

/// Sealed artifacts up to this size go up in one request; larger ones in parts of this size
/// (S3 wants at least 5 MiB a part).
const PART: usize = 8 * 1024 * 1024;
/// Parts in flight at once during an upload.
const PARTS_IN_FLIGHT: usize = 2;

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

    /// The object's key in the store: `sha256/ab/cdef…`.
    pub fn key(&self) -> String {
        format!("sha256/{}/{}", &self.0[..2], &self.0[2..])
    }

    fn object_path(&self) -> ObjectPath {
        ObjectPath::from(self.key())
    }
}

/// What [`ArtifactStore::put`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub address: Address,
    /// Bytes at rest.
    pub sealed_size: u64,
    /// Bytes of the zip.
    pub size: u64,
}

/// Why the store could not keep or give back an artifact.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the artifact store {location} is not usable: {message}")]
    Store { location: String, message: String },
    #[error(transparent)]
    Io(#[from] io::Error),
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
pub struct ArtifactStore {
    objects: Arc<dyn ObjectStore>,
    /// Where artifacts are sealed and fetched to before they go up or are opened.
    scratch: PathBuf,
    /// The location as the operator wrote it, for messages.
    location: String,
}

impl ArtifactStore {
    /// The store at `location` (an S3 one reached with `s3`); `scratch` is a directory on this
    /// machine for work files (a local store keeps its own under its root).
    pub fn open(
        location: &ArtifactLocation,
        s3: &S3Options,
        scratch: &Path,
    ) -> Result<ArtifactStore, StoreError> {
        let described = location.to_string();
        let fail = |e: object_store::Error| StoreError::Store {
            location: described.clone(),
            message: e.to_string(),
        };
        let (objects, scratch): (Arc<dyn ObjectStore>, PathBuf) = match location {
            ArtifactLocation::Directory(root) => {
                std::fs::create_dir_all(root.join("tmp"))?;
                let files = LocalFileSystem::new_with_prefix(root).map_err(fail)?;
                (Arc::new(files), root.join("tmp"))
            }
            ArtifactLocation::S3 { bucket, prefix } => {
                std::fs::create_dir_all(scratch)?;
                let mut builder = object_store::aws::AmazonS3Builder::new();
                for (name, value) in s3.entries() {
                    match name.to_ascii_lowercase().parse() {
                        Ok(key) => builder = builder.with_config(key, value),
                        Err(_) => tracing::debug!("{name} is not an S3 client setting; ignored"),
                    }
                }
                let s3 = builder.with_bucket_name(bucket).build().map_err(fail)?;
                let objects: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix.as_str()))
                };
                (objects, scratch.to_path_buf())
            }
        };
        Ok(ArtifactStore {
            objects,
            scratch,
            location: described,
        })
    }

    /// Asks the store for one listing, so a wrong bucket, endpoint or credentials stop the
    /// start-up with a clear message instead of failing the first action.
    pub async fn check(&self) -> Result<(), StoreError> {
        self.objects
            .list_with_delimiter(Some(&ObjectPath::from("sha256")))
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    fn error(&self, e: object_store::Error) -> StoreError {
        StoreError::Store {
            location: self.location.clone(),
            message: match e {
                object_store::Error::NotFound { .. } => "the object is not there".into(),
                other => other.to_string(),
            },
        }
    }

    pub fn scratch_file(&self) -> io::Result<File> {
        tempfile::tempfile_in(&self.scratch)
    }

    /// Seals the zip `plain` (read from its start) with `key` and stores it.
    pub async fn put(&self, key: &DataKey, mut plain: File) -> Result<Stored, StoreError> {
        let mut sealed_file = self.scratch_file()?;
        let key = key.clone();
        let (sealed_file, size, sealed_size, address) =
            tokio::task::spawn_blocking(move || -> io::Result<_> {
                plain.rewind()?;
                let (size, sealed_size, address) = {
                    let mut out = Hashing {
                        inner: io::BufWriter::new(&mut sealed_file),
                        hash: Sha256::new(),
                        written: 0,
                    };
                    let size = sealed::seal(&key, &mut io::BufReader::new(&mut plain), &mut out)?;
                    out.flush()?;
                    (size, out.written, Address(hex(&out.hash.finalize())))
                };
                sealed_file.rewind()?;
                Ok((sealed_file, size, sealed_size, address))
            })
            .await
            .map_err(io::Error::other)??;
        self.upload(&address, sealed_file, sealed_size).await?;
        Ok(Stored {
            address,
            sealed_size,
            size,
        })
    }

    async fn upload(&self, address: &Address, file: File, size: u64) -> Result<(), StoreError> {
        let path = address.object_path();
        let mut file = tokio::fs::File::from_std(file);
        if size <= PART as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            tokio::io::AsyncReadExt::read_to_end(&mut file, &mut bytes).await?;
            self.objects
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(|e| self.error(e))?;
            return Ok(());
        }
        let upload = self
            .objects
            .put_multipart(&path)
            .await
            .map_err(|e| self.error(e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = match tokio::io::AsyncReadExt::read(&mut file, &mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(self.error(e));
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Opens a stored artifact into a fresh scratch file (rewound) and its size: its stored bytes
    /// must still hash to its address and authenticate under `key`.
    pub async fn get(&self, key: &DataKey, address: &Address) -> Result<(File, u64), OpenError> {
        let fetched = self.scratch_file()?;
        let mut hash = Sha256::new();
        let mut out = tokio::fs::File::from_std(fetched.try_clone()?);
        let mut body = match self.objects.get(&address.object_path()).await {
            Ok(result) => result.into_stream(),
            Err(object_store::Error::NotFound { .. }) => return Err(OpenError::Missing),
            Err(e) => return Err(OpenError::Store(self.error(e).to_string())),
        };
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| OpenError::Store(self.error(e).to_string()))?;
            hash.update(&chunk);
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        drop(out);
        if hex(&hash.finalize()) != address.0 {
            return Err(OpenError::Tampered(0));
        }
        let key = key.clone();
        let mut plain = self.scratch_file()?;
        tokio::task::spawn_blocking(move || -> Result<(File, u64), OpenError> {
            let mut fetched = fetched;
            fetched.rewind()?;
            let size = sealed::open(
                &key,
                &mut io::BufReader::new(fetched),
                &mut io::BufWriter::new(&mut plain),
            )?;
            plain.rewind()?;
            Ok((plain, size))
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Removes a stored artifact (retention); absent is no error.
    pub async fn delete(&self, address: &Address) -> Result<(), StoreError> {
        match self.objects.delete(&address.object_path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn file_with(data: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        f
    }

    fn read_all(mut file: File) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        file.rewind()?;
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn local(dir: &Path) -> ArtifactStore {
        ArtifactStore::open(
            &ArtifactLocation::Directory(dir.to_path_buf()),
            &S3Options::default(),
            Path::new("/nonexistent"),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn stored_artifacts_hold_no_plaintext_and_detect_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = local(dir.path());
        store.check().await.unwrap();
        let key = DataKey::generate("pipeline-key-1");
        let secret = b"the build output: password=hunter2 ".repeat(5000);
        let stored = store.put(&key, file_with(&secret)).await.unwrap();
        assert_eq!(stored.size, secret.len() as u64);
        let on_disk = dir.path().join(stored.address.key());
        let at_rest = std::fs::read(&on_disk).unwrap();
        assert_eq!(at_rest.len() as u64, stored.sealed_size);
        assert!(
            !at_rest.windows(7).any(|w| w == b"hunter2"),
            "no plaintext at rest"
        );

        let (out, size) = store.get(&key, &stored.address).await.unwrap();
        assert_eq!(size, secret.len() as u64);
        assert_eq!(read_all(out).unwrap(), secret);

        // One flipped byte on disk: refused before any plaintext is trusted.
        let mut changed = at_rest.clone();
        changed[100] ^= 1;
        std::fs::write(&on_disk, &changed).unwrap();
        assert!(matches!(
            store.get(&key, &stored.address).await,
            Err(OpenError::Tampered(_))
        ));
        store.delete(&stored.address).await.unwrap();
        store.delete(&stored.address).await.unwrap();
        assert!(matches!(
            store.get(&key, &stored.address).await,
            Err(OpenError::Missing)
        ));
        assert!(Address::parse("ABC").is_none());
        assert_eq!(
            Address::parse(stored.address.as_str()),
            Some(stored.address.clone())
        );
    }

    #[tokio::test]
    async fn large_artifacts_go_up_in_parts_and_come_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = local(dir.path());
        let key = DataKey::generate("pipeline-key-2");
        // Two parts, of bytes that do not compress away.
        let mut data = vec![0u8; PART + 12345];
        getrandom::fill(&mut data).unwrap();
        let stored = store.put(&key, file_with(&data)).await.unwrap();
        assert!(stored.sealed_size > PART as u64);
        let (out, size) = store.get(&key, &stored.address).await.unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(read_all(out).unwrap(), data);
        // The same bytes sealed again are a new object (a fresh nonce), never an overwrite.
        let again = store.put(&key, file_with(&data)).await.unwrap();
        assert_ne!(again.address, stored.address);
    }
}
