//! Signed artifact links: a URL that lets whoever holds it download one artifact until it expires,
//! with no account (a webhook endpoint reading its action's input artifacts, as a Lambda function
//! reads its inputs from S3 with temporary credentials). The link carries the pipeline, the
//! artifact's address and name and the expiry, signed with HMAC-SHA256 under a key derived from
//! the root key, so any server of the installation checks it and nobody can alter it.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use super::store::Address;

/// The label the links' key is derived under from the root key.
pub const KEY_LABEL: &[u8] = b"sluice artifact links v1";
/// The longest a link lives.
pub const LIFETIME: time::Duration = time::Duration::minutes(15);

/// What a link grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub pipeline_id: Uuid,
    pub address: Address,
    /// The artifact's name (the downloaded file is called after it).
    pub name: String,
    /// Unix seconds after which the link is refused.
    pub expires: i64,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    p: Uuid,
    a: String,
    n: String,
    e: i64,
}

/// Why a link is refused (the same answer for all: a link is valid or it is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    BadSignature,
    Expired,
}

fn mac(key: &[u8; 32], payload: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    mac
}

/// The link's token: `<payload>.<signature>`, both base64url without padding.
pub fn sign(key: &[u8; 32], link: &Link) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = Claims {
        p: link.pipeline_id,
        a: link.address.as_str().to_string(),
        n: link.name.clone(),
        e: link.expires,
    };
    let payload = b64.encode(serde_json::to_vec(&claims).unwrap_or_default());
    let signature = b64.encode(mac(key, &payload).finalize().into_bytes());
    format!("{payload}.{signature}")
}

/// The link a token grants, if its signature is this key's and it has not expired at `now`
/// (Unix seconds). The signature is checked in constant time before anything is parsed.
pub fn verify(key: &[u8; 32], token: &str, now: i64) -> Result<Link, Refused> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, signature) = token.split_once('.').ok_or(Refused::Malformed)?;
    let signature = b64.decode(signature).map_err(|_| Refused::Malformed)?;
    mac(key, payload)
        .verify_slice(&signature)
        .map_err(|_| Refused::BadSignature)?;
    let claims: Claims = b64
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(Refused::Malformed)?;
    if now > claims.e {
        return Err(Refused::Expired);
    }
    Ok(Link {
        pipeline_id: claims.p,
        address: Address::parse(&claims.a).ok_or(Refused::Malformed)?,
        name: claims.n,
        expires: claims.e,
    })
}

/// Makes links to artifacts for a provider: the server's URL and the links' key.
#[derive(Clone)]
pub struct Links {
    /// A server's public URL, without a trailing slash.
    pub base: String,
    pub key: [u8; 32],
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Where links are served, under a server's URL.
pub const PATH: &str = "/artifact-links/";

impl Links {
    /// A link to the artifact `name` at `address` of the pipeline, valid for [`LIFETIME`].
    pub fn url(&self, pipeline_id: Uuid, address: &Address, name: &str) -> String {
        let expires = (time::OffsetDateTime::now_utc() + LIFETIME).unix_timestamp();
        let token = sign(
            &self.key,
            &Link {
                pipeline_id,
                address: address.clone(),
                name: name.to_string(),
                expires,
            },
        );
        format!("{}{PATH}{token}", self.base.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link {
            pipeline_id: Uuid::new_v4(),
            address: Address::parse(&"ab".repeat(32)).unwrap(),
            name: "Src".into(),
            expires: 1_000,
        }
    }

    #[test]
    fn a_link_verifies_under_its_key_until_it_expires_and_not_once_altered() {
        let key = [7u8; 32];
        let l = link();
        let token = sign(&key, &l);
        assert_eq!(verify(&key, &token, 999), Ok(l.clone()));
        assert_eq!(verify(&key, &token, 1_000), Ok(l.clone()));
        assert_eq!(verify(&key, &token, 1_001), Err(Refused::Expired));
        assert_eq!(verify(&[8u8; 32], &token, 0), Err(Refused::BadSignature));
        // Any other payload under the same signature is refused: a longer expiry, another artifact.
        let (_, signature) = token.split_once('.').unwrap();
        let longer = sign(
            &[9u8; 32],
            &Link {
                expires: 9_999_999,
                ..l.clone()
            },
        );
        let (payload, _) = longer.split_once('.').unwrap();
        assert_eq!(
            verify(&key, &format!("{payload}.{signature}"), 0),
            Err(Refused::BadSignature)
        );
        for junk in ["", ".", "abc", "a.b", "%%%.%%%", &format!("{token}x")] {
            assert!(verify(&key, junk, 0).is_err(), "{junk}");
        }
    }
}
