//! Random tokens (session cookies, CSRF tokens, API tokens) and their stored hashes.
//!
//! Tokens are 256-bit random values. The database stores only their SHA-256, so a leaked database
//! does not hand out working credentials.

use std::fmt;

use sha2::{Digest, Sha256};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The prefix of every API token, so leaked tokens are easy to spot (secret scanners).
pub const API_TOKEN_PREFIX: &str = "sluice_";

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS random source failing is unrecoverable; nothing safe can continue without it.
    getrandom::fill(&mut bytes).expect("the operating system's random source is unavailable");
    bytes
}

/// Encodes bytes in base62 (big-endian, fixed width for a given input length).
fn base62(bytes: &[u8]) -> String {
    // Width that always fits: ceil(len * 8 / log2(62)).
    let width = (bytes.len() * 8 * 1000).div_ceil(5954);
    let mut digits = vec![0u8; width];
    let mut number = bytes.to_vec();
    for slot in digits.iter_mut().rev() {
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = (value / 62) as u8;
            remainder = value % 62;
        }
        *slot = BASE62[remainder as usize];
    }
    String::from_utf8(digits).expect("base62 digits are ASCII")
}

/// SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A secret shown once (a new session cookie or API token). `Debug` does not reveal it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A new session token: 256 random bits, base62.
    pub fn new_session_token() -> Self {
        Self(base62(&random_bytes::<32>()))
    }

    /// A new CSRF synchronizer token.
    pub fn new_csrf_token() -> Self {
        Self(base62(&random_bytes::<32>()))
    }

    /// A new API token: `sluice_` + 32 random bytes in base62.
    pub fn new_api_token() -> Self {
        Self(format!(
            "{API_TOKEN_PREFIX}{}",
            base62(&random_bytes::<32>())
        ))
    }

    /// The secret's text, for the one place that hands it over.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database stores.
    pub fn hash(&self) -> Vec<u8> {
        token_hash(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// Whether a presented API token has the right shape (checked before any database lookup).
pub fn looks_like_api_token(token: &str) -> bool {
    token
        .strip_prefix(API_TOKEN_PREFIX)
        .is_some_and(|rest| rest.len() == 43 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_tokens_have_the_documented_shape() {
        let token = Secret::new_api_token();
        assert!(token.expose().starts_with("sluice_"));
        assert!(looks_like_api_token(token.expose()), "{}", token.expose());
        assert_ne!(token.expose(), Secret::new_api_token().expose());
        assert_eq!(format!("{token:?}"), "Secret(****)");
        assert!(!looks_like_api_token("sluice_short"));
        assert!(!looks_like_api_token("Bearer x"));
    }

    #[test]
    fn base62_is_fixed_width_and_ordered() {
        assert_eq!(base62(&[0u8; 32]).len(), 43);
        assert_eq!(base62(&[255u8; 32]).len(), 43);
        assert_eq!(base62(&[0, 61]), "00Z".replace('Z', "z"));
        assert_eq!(base62(&[0, 62]), "010");
    }

    #[test]
    fn hashes_are_sha256() {
        assert_eq!(token_hash("abc").len(), 32);
        assert_eq!(token_hash("abc"), token_hash("abc"));
        assert_ne!(token_hash("abc"), token_hash("abd"));
    }
}
