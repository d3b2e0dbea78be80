//! Secrets at rest: AES-256-GCM under a master key that never enters the database.
//!
//! The key comes from `SLUICE_MASTER_KEY` (base64 of 32 bytes) or, when unset, from
//! `<data-dir>/master.key` (generated once, mode 0600). Every ciphertext names the key it was made
//! with (`sluice:enc:v2:<key id>:<base64 nonce ‖ ciphertext>`), so keys can be rotated later, and
//! is bound to the place it belongs (its *context*, authenticated as associated data: a pipeline
//! secret's pipeline id, stage, action and property): copied anywhere else, it does not open.
//! `v1` values (no context, from before contexts) still open.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

const PREFIX: &str = "sluice:enc:";
const V1: &str = "sluice:enc:v1:";
const V2: &str = "sluice:enc:v2:";

/// The master key. `Debug` shows only its id.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; 32],
    id: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("SLUICE_MASTER_KEY must be the base64 encoding of exactly 32 bytes")]
    BadEnvironmentKey,
    #[error(
        "there is no master key at {path}: set SLUICE_MASTER_KEY, or --data-dir to the server's data directory"
    )]
    Missing { path: String },
    #[error("the master key file {path} is not 32 bytes of base64; restore it from your backup")]
    BadKeyFile { path: String },
    #[error("cannot read or create the master key file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl MasterKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let id = Sha256::digest(key)[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self { key, id }
    }

    /// Parses base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Option<Self> {
        let bytes = B64.decode(text.trim()).ok()?;
        let key: [u8; 32] = bytes.try_into().ok()?;
        Some(Self::from_bytes(key))
    }

    /// The key of `SLUICE_MASTER_KEY` if given, else `<dir>/master.key`; never creates one
    /// (for commands that only read, such as `sluice audit verify`).
    pub fn load(from_env: Option<&str>, dir: &Path) -> Result<Self, KeyError> {
        if let Some(text) = from_env {
            return Self::from_base64(text).ok_or(KeyError::BadEnvironmentKey);
        }
        let path = dir.join("master.key");
        let shown = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_base64(&text).ok_or(KeyError::BadKeyFile { path: shown }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(KeyError::Missing { path: shown })
            }
            Err(source) => Err(KeyError::Io {
                path: shown,
                source,
            }),
        }
    }

    /// The key of `SLUICE_MASTER_KEY` if given, else `<dir>/master.key`, created on first use.
    pub fn load_or_create(from_env: Option<&str>, dir: &Path) -> Result<Self, KeyError> {
        if let Some(text) = from_env {
            return Self::from_base64(text).ok_or(KeyError::BadEnvironmentKey);
        }
        let path = dir.join("master.key");
        let shown = path.display().to_string();
        let io = |source| KeyError::Io {
            path: shown.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_base64(&text).ok_or(KeyError::BadKeyFile {
                path: shown.clone(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(io)?;
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .expect("the operating system's random source is unavailable");
                // create_new: two processes racing never overwrite each other's key.
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path);
                match file {
                    Ok(mut f) => {
                        f.write_all(format!("{}\n", B64.encode(key)).as_bytes())
                            .map_err(io)?;
                        f.sync_all().map_err(io)?;
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                            .map_err(io)?;
                        Ok(Self::from_bytes(key))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(None, dir)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// A key for another purpose (`label` names it), derived one way: HMAC-SHA256(master, label).
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(label);
        mac.finalize().into_bytes().into()
    }

    /// Encrypts a secret value into its stored form, bound to `context` (where it belongs).
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.key));
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the operating system's random source is unavailable");
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a bounded value cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        format!("{V2}{}:{}", self.id, B64.encode(blob))
    }

    /// Decrypts a stored value sealed for `context`; `None` when it is not ours, made with another
    /// key, sealed for another context, or tampered with.
    pub fn open(&self, stored: &str, context: &str) -> Option<String> {
        let (rest, aad) = match stored.strip_prefix(V2) {
            Some(rest) => (rest, context.as_bytes()),
            None => (stored.strip_prefix(V1)?, &b""[..]),
        };
        let (id, data) = rest.split_once(':')?;
        if id != self.id {
            return None;
        }
        let blob = B64.decode(data).ok()?;
        if blob.len() < 12 + 16 {
            return None;
        }
        let (nonce, sealed) = blob.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.key));
        let plain = cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad })
            .ok()?;
        String::from_utf8(plain).ok()
    }

    /// Whether a stored value is a sealed secret.
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system's random source is unavailable");
        Self::from_bytes(key)
    }

    /// The key's bytes, to be sealed into the keyring (`ops::keys`) and nowhere else.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// The key's bytes in base64, as `SLUICE_MASTER_KEY` and `master.key` hold them.
    pub fn to_base64(&self) -> String {
        B64.encode(self.key)
    }

    /// Writes the key to a new file `path` (mode 0600, synced); refuses an existing file.
    pub fn write_new_file(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(format!("{}\n", self.to_base64()).as_bytes())?;
        f.sync_all()?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_file_is_written_once_and_reads_back() {
        let key = MasterKey::generate();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        key.write_new_file(&path).unwrap();
        assert!(key.write_new_file(&path).is_err(), "never overwrites");
        assert_eq!(MasterKey::load(None, dir.path()).unwrap().id(), key.id());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn seal_and_open() {
        let key = MasterKey::from_bytes([7u8; 32]);
        let sealed = key.seal("hunter2", "here");
        assert!(sealed.starts_with(&format!("sluice:enc:v2:{}:", key.id())));
        assert!(!sealed.contains("hunter2"));
        assert_ne!(
            sealed,
            key.seal("hunter2", "here"),
            "a fresh nonce every time"
        );
        assert_eq!(key.open(&sealed, "here").as_deref(), Some("hunter2"));
        assert_eq!(key.open(&sealed, "there"), None, "bound to its context");
        let other = MasterKey::from_bytes([8u8; 32]);
        assert_eq!(
            other.open(&sealed, "here"),
            None,
            "another key cannot open it"
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(key.open(&tampered, "here"), None);
        assert!(format!("{key:?}").starts_with("MasterKey("));
    }

    #[test]
    fn values_sealed_before_contexts_still_open() {
        let key = MasterKey::from_bytes([7u8; 32]);
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(key.key));
        let nonce = [3u8; 12];
        let mut blob = nonce.to_vec();
        blob.extend(cipher.encrypt(&Nonce::from(nonce), &b"old"[..]).unwrap());
        let v1 = format!("{V1}{}:{}", key.id(), B64.encode(blob));
        assert!(MasterKey::is_sealed(&v1));
        assert_eq!(key.open(&v1, "anything").as_deref(), Some("old"));
    }

    #[test]
    fn the_key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let first = MasterKey::load_or_create(None, dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let again = MasterKey::load_or_create(None, dir.path()).unwrap();
        assert_eq!(first.id(), again.id());
        std::fs::write(dir.path().join("master.key"), "garbage").unwrap();
        assert!(matches!(
            MasterKey::load_or_create(None, dir.path()),
            Err(KeyError::BadKeyFile { .. })
        ));
    }

    #[test]
    fn the_environment_key_wins_and_must_be_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let text = B64.encode([1u8; 32]);
        let key = MasterKey::load_or_create(Some(&text), dir.path()).unwrap();
        assert_eq!(key.id(), MasterKey::from_bytes([1u8; 32]).id());
        assert!(!dir.path().join("master.key").exists());
        assert!(matches!(
            MasterKey::load_or_create(Some("c2hvcnQ="), dir.path()),
            Err(KeyError::BadEnvironmentKey)
        ));
    }
}
