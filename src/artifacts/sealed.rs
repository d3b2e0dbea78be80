//! Artifacts encrypted at rest, as a stream: AES-256-GCM over chunks of [`CHUNK`] bytes, so an
//! artifact of any size is sealed and opened holding one chunk in memory.
//!
//! Format: `SLUICEA1`, the key id (one length byte, then its bytes), an 8-byte random nonce
//! prefix; then chunks, each a 4-byte big-endian length and the ciphertext with its tag. Chunk
//! `i`'s nonce is the prefix followed by `i` (4 bytes); its associated data is the key id, `i`
//! (8 bytes) and whether it is the last chunk (one byte), so chunks cannot be reordered, dropped,
//! moved between artifacts or keys, or the stream cut short, without opening failing.

use std::io::{self, Read, Write};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

const MAGIC: &[u8; 8] = b"SLUICEA1";
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

/// A data key (one per pipeline), with the id that names it in every artifact it seals.
#[derive(Clone)]
pub struct DataKey {
    pub id: String,
    key: [u8; 32],
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({})", self.id)
    }
}

impl DataKey {
    pub fn new(id: impl Into<String>, key: [u8; 32]) -> DataKey {
        DataKey { id: id.into(), key }
    }

    /// A fresh random key.
    pub fn generate(id: impl Into<String>) -> DataKey {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system's random source is unavailable");
        DataKey::new(id, key)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

/// Why an artifact does not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the artifact is not a Sluice artifact, or its header is damaged")]
    NotAnArtifact,
    #[error("the artifact was sealed with the key {0}, not this pipeline's")]
    OtherKey(String),
    #[error("the artifact has been altered or cut short (chunk {0} does not authenticate)")]
    Tampered(u64),
    #[error("the artifact is no longer in the artifact store")]
    Missing,
    #[error("{0}")]
    Store(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn nonce(prefix: &[u8; 8], index: u64) -> Result<Nonce<aes_gcm::aead::consts::U12>, io::Error> {
    let counter = u32::try_from(index)
        .map_err(|_| io::Error::other("an artifact may hold at most 2^32 chunks"))?;
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(prefix);
    n[8..].copy_from_slice(&counter.to_be_bytes());
    Ok(Nonce::from(n))
}

fn aad(key_id: &str, index: u64, last: bool) -> Vec<u8> {
    let mut a = key_id.as_bytes().to_vec();
    a.extend_from_slice(&index.to_be_bytes());
    a.push(u8::from(last));
    a
}

/// Fills `buf` as far as the reader allows; the number of bytes read.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Seals everything `plain` yields into `sealed`; the plaintext length.
pub fn seal(key: &DataKey, plain: &mut impl Read, sealed: &mut impl Write) -> io::Result<u64> {
    let id = key.id.as_bytes();
    let id_len = u8::try_from(id.len()).map_err(|_| io::Error::other("key id too long"))?;
    let mut prefix = [0u8; 8];
    getrandom::fill(&mut prefix).map_err(|e| io::Error::other(e.to_string()))?;
    sealed.write_all(MAGIC)?;
    sealed.write_all(&[id_len])?;
    sealed.write_all(id)?;
    sealed.write_all(&prefix)?;
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(key.key));
    // One chunk of look-ahead tells whether the current chunk is the last.
    let mut current = vec![0u8; CHUNK];
    let mut next = vec![0u8; CHUNK];
    let mut current_len = fill(plain, &mut current)?;
    let mut index = 0u64;
    let mut total = 0u64;
    loop {
        let next_len = if current_len == CHUNK {
            fill(plain, &mut next)?
        } else {
            0
        };
        let last = next_len == 0;
        let ciphertext = cipher
            .encrypt(
                &nonce(&prefix, index)?,
                Payload {
                    msg: &current[..current_len],
                    aad: &aad(&key.id, index, last),
                },
            )
            .map_err(|_| io::Error::other("sealing a chunk failed"))?;
        let len = u32::try_from(ciphertext.len()).map_err(io::Error::other)?;
        sealed.write_all(&len.to_be_bytes())?;
        sealed.write_all(&ciphertext)?;
        total += current_len as u64;
        if last {
            return Ok(total);
        }
        std::mem::swap(&mut current, &mut next);
        current_len = next_len;
        index += 1;
    }
}

/// Opens what [`seal`] wrote, writing the plaintext to `plain` as it authenticates (a caller
/// must discard what it wrote if this fails); the plaintext length.
pub fn open(
    key: &DataKey,
    sealed: &mut impl Read,
    plain: &mut impl Write,
) -> Result<u64, OpenError> {
    let mut magic = [0u8; 8];
    if fill(sealed, &mut magic)? != 8 || &magic != MAGIC {
        return Err(OpenError::NotAnArtifact);
    }
    let mut id_len = [0u8; 1];
    if fill(sealed, &mut id_len)? != 1 {
        return Err(OpenError::NotAnArtifact);
    }
    let mut id = vec![0u8; usize::from(id_len[0])];
    if fill(sealed, &mut id)? != id.len() {
        return Err(OpenError::NotAnArtifact);
    }
    let id = String::from_utf8(id).map_err(|_| OpenError::NotAnArtifact)?;
    if id != key.id {
        return Err(OpenError::OtherKey(id));
    }
    let mut prefix = [0u8; 8];
    if fill(sealed, &mut prefix)? != 8 {
        return Err(OpenError::NotAnArtifact);
    }
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(key.key));
    let mut index = 0u64;
    let mut total = 0u64;
    let mut len_bytes = [0u8; 4];
    let mut chunk = vec![0u8; CHUNK + TAG];
    let mut have_len = fill(sealed, &mut len_bytes)?;
    loop {
        if have_len != 4 {
            return Err(OpenError::Tampered(index));
        }
        let len = u32::from_be_bytes(len_bytes) as usize;
        if !(TAG..=CHUNK + TAG).contains(&len) {
            return Err(OpenError::Tampered(index));
        }
        if fill(sealed, &mut chunk[..len])? != len {
            return Err(OpenError::Tampered(index));
        }
        have_len = fill(sealed, &mut len_bytes)?;
        let last = have_len == 0;
        let plaintext = cipher
            .decrypt(
                &nonce(&prefix, index)?,
                Payload {
                    msg: &chunk[..len],
                    aad: &aad(&key.id, index, last),
                },
            )
            .map_err(|_| OpenError::Tampered(index))?;
        plain.write_all(&plaintext)?;
        total += plaintext.len() as u64;
        if last {
            return Ok(total);
        }
        index += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(key: &DataKey, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        assert_eq!(
            seal(key, &mut &data[..], &mut out).unwrap(),
            data.len() as u64
        );
        out
    }

    fn opened(key: &DataKey, data: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut out = Vec::new();
        open(key, &mut &data[..], &mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trips_at_every_chunk_boundary() {
        let key = DataKey::generate("k1");
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let s = sealed(&key, &data);
            if len >= 64 {
                assert!(
                    !s.windows(64).any(|w| w == &data[..64]),
                    "no plaintext at rest"
                );
            }
            assert_eq!(opened(&key, &s).unwrap(), data, "{len}");
        }
    }

    #[test]
    fn tampering_truncation_reordering_and_other_keys_are_detected() {
        let key = DataKey::generate("k1");
        let data = vec![7u8; 2 * CHUNK + 100];
        let s = sealed(&key, &data);
        let header = 8 + 1 + 2 + 8;
        let chunk_len = 4 + CHUNK + TAG;

        let mut flipped = s.clone();
        flipped[header + 10] ^= 1;
        assert!(matches!(
            opened(&key, &flipped),
            Err(OpenError::Tampered(0))
        ));

        // Cut after the first two chunks: the second was not sealed as the last.
        let cut = &s[..header + 2 * chunk_len];
        assert!(matches!(opened(&key, cut), Err(OpenError::Tampered(1))));

        // Swap the first two chunks.
        let mut swapped = s[..header].to_vec();
        swapped.extend_from_slice(&s[header + chunk_len..header + 2 * chunk_len]);
        swapped.extend_from_slice(&s[header..header + chunk_len]);
        swapped.extend_from_slice(&s[header + 2 * chunk_len..]);
        assert!(matches!(
            opened(&key, &swapped),
            Err(OpenError::Tampered(0))
        ));

        let other = DataKey::generate("k2");
        assert!(matches!(opened(&other, &s), Err(OpenError::OtherKey(id)) if id == "k1"));
        let same_id = DataKey::generate("k1");
        assert!(matches!(opened(&same_id, &s), Err(OpenError::Tampered(0))));
        assert!(matches!(
            opened(&key, b"PK\x03\x04 a zip"),
            Err(OpenError::NotAnArtifact)
        ));
        assert!(format!("{key:?}").contains("k1") && !format!("{key:?}").contains('['));
    }
}
