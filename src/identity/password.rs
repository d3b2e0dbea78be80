//! Passwords: the rules for new ones, and argon2id hashing off the async workers.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Shortest and longest password accepted, in characters.
pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 1024;

/// A password that passed the rules: 12-1024 characters of any Unicode, and not a common or
/// easily guessed one. `Debug` hides it.
#[derive(Clone)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(****)")
    }
}

impl NewPassword {
    /// Checks a new password. `user_name` counts as an easy guess too.
    pub fn parse(raw: &str, user_name: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < MIN_CHARS {
            return Err(format!(
                "the password must be at least {MIN_CHARS} characters long"
            ));
        }
        if chars > MAX_CHARS {
            return Err(format!(
                "the password must be at most {MAX_CHARS} characters long"
            ));
        }
        // zxcvbn's cost grows quickly with length; its dictionaries (the common-password list
        // among them) are about short strings, so the first 128 characters decide.
        let head: String = raw.chars().take(128).collect();
        let estimate = zxcvbn::zxcvbn(&head, &[user_name]);
        if estimate.score() < zxcvbn::Score::Three {
            return Err(
                "the password is too easy to guess (a common password, or close to one): choose another"
                    .into(),
            );
        }
        Ok(Self(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// argon2id with OWASP's parameters: m = 19 MiB, t = 2, p = 1.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes and verifies passwords on the blocking pool, at most a few at a time, so sign-in
/// storms cannot starve the HTTP workers or exhaust memory (19 MiB per hash).
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// `concurrency`: hashes allowed at once (the number of cores is a good value).
    pub fn new(concurrency: usize) -> Self {
        // Verifying an unknown user against this costs the same as a real verification, so the
        // response time does not reveal whether a user exists.
        let dummy_hash = argon2()
            .hash_password(b"sluice dummy password for timing")
            .expect("hashing a constant succeeds")
            .to_string();
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy_hash.into(),
        }
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) for a new password.
    pub async fn hash(&self, password: &NewPassword) -> anyhow::Result<String> {
        let password = password.0.clone();
        let _permit = self.permits.acquire().await?;
        let phc = tokio::task::spawn_blocking(move || {
            argon2()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))
        })
        .await??;
        Ok(phc)
    }

    /// Whether `candidate` matches `stored`. With no stored hash (unknown user, or a user without
    /// a password) it verifies against a dummy hash and returns false, taking the same time.
    pub async fn verify(&self, candidate: &str, stored: Option<&str>) -> anyhow::Result<bool> {
        let candidate = candidate.to_string();
        let (hash, real) = match stored {
            Some(h) => (h.to_string(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        let _permit = self.permits.acquire().await?;
        let matches = tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&hash) else {
                return false;
            };
            argon2()
                .verify_password(candidate.as_bytes(), &parsed)
                .is_ok()
        })
        .await?;
        Ok(real && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_for_new_passwords() {
        assert!(
            NewPassword::parse("short", "u")
                .unwrap_err()
                .contains("at least 12")
        );
        assert!(
            NewPassword::parse(&"x".repeat(1025), "u")
                .unwrap_err()
                .contains("at most 1024")
        );
        assert!(
            NewPassword::parse("password1234", "u")
                .unwrap_err()
                .contains("too easy")
        );
        assert!(
            NewPassword::parse("qwertyuiopasdf", "u")
                .unwrap_err()
                .contains("too easy")
        );
        assert!(NewPassword::parse("alice-alice-alice", "alice").is_err());
        assert!(NewPassword::parse("correct horse battery staple", "u").is_ok());
        assert!(
            NewPassword::parse("Тайный пароль для Sluice", "u").is_ok(),
            "any Unicode"
        );
        let long: String = "ab1!".repeat(256);
        assert_eq!(long.chars().count(), 1024);
        assert!(NewPassword::parse(&format!("Zq8#{}", &long[4..]), "u").is_ok());
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(2);
        let password = NewPassword::parse("correct horse battery staple", "u").unwrap();
        let phc = hasher.hash(&password).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            hasher
                .verify("correct horse battery staple", Some(&phc))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("correct horse battery stapler", Some(&phc))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("correct horse battery staple", None)
                .await
                .unwrap()
        );
        assert!(!hasher.verify("x", Some("not a phc string")).await.unwrap());
    }
}
