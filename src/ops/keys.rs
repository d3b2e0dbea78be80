//! The keys behind every sealed value, and master-key rotation.
//!
//! The master key (`SLUICE_MASTER_KEY` or `<data-dir>/master.key`) never enters the database.
//! It seals the *keyring* there: the root key, which seals every secret (pipeline secrets,
//! connection tokens, tokens waiting to be shown) and wraps every pipeline's data key, and the
//! audit chain's key. When a database first meets the keyring, the master key itself becomes the
//! root key and the chain key is the one derived from it, so everything sealed and chained
//! before keeps opening and verifying.
//!
//! `sluice keys rotate` makes a new master key and a new root key and, in one transaction,
//! reseals everything sealed by the old root under the new one and the keyring under the new
//! master key: afterwards the old master key opens nothing. The audit chain key is kept (it is
//! rewrapped), so the chain verifies across the rotation.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sqlx::PgPool;
use time::OffsetDateTime;

use serde_json::json;

use crate::access::Action;
use crate::audit::{self, ChainKey};
use crate::db;
use crate::db::keyring::KeyRow;
use crate::sealing::MasterKey;

/// The keys a process works with, opened from the keyring with the master key.
#[derive(Clone, Debug)]
pub struct Keys {
    /// Seals and opens every secret; wraps the pipelines' data keys.
    pub root: MasterKey,
    /// Keys the audit chain's HMAC.
    pub chain: ChainKey,
}

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(
        "the master key {0} does not open this database's keys: it is not the key this database was set up or last rotated with (check SLUICE_MASTER_KEY or master.key)"
    )]
    WrongMasterKey(String),
    #[error("the database's keyring is damaged: {0}")]
    Corrupt(String),
    #[error("a sealed value does not open with the current keys: {0}")]
    Unopenable(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const ROOT: &str = "root";
const CHAIN: &str = "audit-chain";

fn row_context(purpose: &str, id: &str) -> String {
    format!("keyring:{purpose}:{id}")
}

fn sealed_row(
    master: &MasterKey,
    purpose: &str,
    id: &str,
    key: &[u8; 32],
    now: OffsetDateTime,
) -> KeyRow {
    KeyRow {
        id: id.to_string(),
        purpose: purpose.to_string(),
        sealed: master.seal(&B64.encode(key), &row_context(purpose, id)),
        created_at: now,
    }
}

fn opened(master: &MasterKey, rows: &[KeyRow]) -> Result<Keys, KeysError> {
    let open = |row: &KeyRow| -> Result<[u8; 32], KeysError> {
        let text = master
            .open(&row.sealed, &row_context(&row.purpose, &row.id))
            .ok_or_else(|| KeysError::WrongMasterKey(master.id().to_string()))?;
        B64.decode(text)
            .ok()
            .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
            .ok_or_else(|| {
                KeysError::Corrupt(format!(
                    "the {} key {} is not 32 bytes",
                    row.purpose, row.id
                ))
            })
    };
    let row_of = |purpose: &str| {
        rows.iter()
            .find(|r| r.purpose == purpose)
            .ok_or_else(|| KeysError::Corrupt(format!("it has no {purpose} key")))
    };
    Ok(Keys {
        root: MasterKey::from_bytes(open(row_of(ROOT)?)?),
        chain: ChainKey::from_bytes(open(row_of(CHAIN)?)?),
    })
}

/// The keys, opened with `master`; on a database without a keyring, one made from `master`
/// (see the module documentation). Many processes may start at once: the first makes it.
pub async fn load(
    pool: &PgPool,
    master: &MasterKey,
    now: OffsetDateTime,
) -> Result<Keys, KeysError> {
    let mut tx = pool.begin().await?;
    db::keyring::lock(&mut tx).await?;
    let mut rows = db::keyring::all(&mut tx).await?;
    if rows.is_empty() {
        let chain = ChainKey::from_master(master);
        rows = vec![
            sealed_row(master, ROOT, master.id(), master.bytes(), now),
            sealed_row(master, CHAIN, "chain-1", chain.bytes(), now),
        ];
        db::keyring::replace(&mut tx, &rows).await?;
    }
    let keys = opened(master, &rows)?;
    tx.commit().await?;
    Ok(keys)
}

/// What a rotation resealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub old_root: String,
    pub new_root: String,
    pub pipeline_secrets: usize,
    pub data_keys: usize,
    pub connection_tokens: usize,
    pub token_reveals: usize,
}

/// Reseals everything the database holds under a new root key, and the keyring under
/// `new_master`, in one transaction: if anything does not open with the current keys, nothing
/// changes.
pub async fn rotate(
    pool: &PgPool,
    old_master: &MasterKey,
    new_master: &MasterKey,
    now: OffsetDateTime,
) -> Result<Rotation, KeysError> {
    let mut tx = pool.begin().await?;
    db::keyring::lock(&mut tx).await?;
    let rows = db::keyring::all(&mut tx).await?;
    if rows.is_empty() {
        return Err(KeysError::Corrupt(
            "it is empty: start the server once before rotating".into(),
        ));
    }
    let old = opened(old_master, &rows)?;
    let root = MasterKey::generate();
    let chain_id = rows
        .iter()
        .find(|r| r.purpose == CHAIN)
        .map_or("chain-1", |r| r.id.as_str())
        .to_string();
    let reseal = |stored: &str, context: &str| -> Result<String, KeysError> {
        let plain = old
            .root
            .open(stored, context)
            .ok_or_else(|| KeysError::Unopenable(context.to_string()))?;
        Ok(root.seal(&plain, context))
    };

    let mut pipeline_secrets = 0;
    for (pipeline_id, version, text) in db::keyring::declarations(&mut tx).await? {
        let mut decl: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| KeysError::Corrupt(format!("pipeline version {version}: {e}")))?;
        let mut changed = 0;
        for stage in decl["stages"].as_array_mut().into_iter().flatten() {
            let stage_name = stage["name"].as_str().unwrap_or_default().to_string();
            for action in stage["actions"].as_array_mut().into_iter().flatten() {
                let action_name = action["name"].as_str().unwrap_or_default().to_string();
                let Some(config) = action
                    .get_mut("configuration")
                    .and_then(|c| c.as_object_mut())
                else {
                    continue;
                };
                for (property, value) in config.iter_mut() {
                    if let Some(stored) = value.as_str().filter(|v| MasterKey::is_sealed(v)) {
                        let context = super::pipelines::secret_context(
                            pipeline_id,
                            &stage_name,
                            &action_name,
                            property,
                        );
                        *value = serde_json::Value::String(reseal(stored, &context)?);
                        changed += 1;
                    }
                }
            }
        }
        if changed > 0 {
            db::keyring::set_declaration(&mut tx, pipeline_id, version, &decl.to_string()).await?;
            pipeline_secrets += changed;
        }
    }
    let data_keys = db::keyring::data_keys(&mut tx).await?;
    for (pipeline_id, key_id, wrapped) in &data_keys {
        let context = super::executions::data_key_context(*pipeline_id, key_id);
        db::keyring::set_data_key(&mut tx, *pipeline_id, &reseal(wrapped, &context)?).await?;
    }
    let tokens = db::keyring::connection_tokens(&mut tx).await?;
    for (id, sealed) in &tokens {
        let context = super::connections::token_context(*id);
        db::keyring::set_connection_token(&mut tx, *id, &reseal(sealed, &context)?).await?;
    }
    let reveals = db::keyring::token_reveals(&mut tx).await?;
    for (token_id, session, sealed) in &reveals {
        let context = super::iam::access_keys::reveal_context(*token_id, *session);
        db::keyring::set_token_reveal(&mut tx, *token_id, &reseal(sealed, &context)?).await?;
    }
    db::keyring::replace(
        &mut tx,
        &[
            sealed_row(new_master, ROOT, root.id(), root.bytes(), now),
            sealed_row(new_master, CHAIN, &chain_id, old.chain.bytes(), now),
        ],
    )
    .await?;
    let rotation = Rotation {
        old_root: old.root.id().to_string(),
        new_root: root.id().to_string(),
        pipeline_secrets,
        data_keys: data_keys.len(),
        connection_tokens: tokens.len(),
        token_reveals: reveals.len(),
    };
    audit::record(
        &mut tx,
        &old.chain,
        audit::Event {
            actor: &audit::Actor {
                user_name: Some("(sluice keys)".into()),
                source_ip: Some("local".into()),
                ..audit::Actor::default()
            },
            event_name: Action::RotateKeys.into(),
            resource_arn: None,
            request_parameters: json!({
                "oldMasterKey": old_master.id(),
                "newMasterKey": new_master.id(),
                "oldRootKey": rotation.old_root,
                "newRootKey": rotation.new_root,
                "pipelineSecrets": rotation.pipeline_secrets,
                "dataKeys": rotation.data_keys,
                "connectionTokens": rotation.connection_tokens,
                "tokenReveals": rotation.token_reveals,
            }),
            outcome: audit::SUCCESS,
            error_message: None,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(rotation)
}
