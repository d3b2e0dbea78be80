//! Upload buckets (the S3 source's role): named buckets of versioned objects in the artifact
//! store, each version sealed with the bucket's own data key. Buckets are a resource kind of their
//! own (`arn:sluice:sluice:::bucket/NAME`): CreateBucket, DeleteBucket, PutObject and
//! ListObjectVersions are authorized on the bucket, ListBuckets on `*`.
//!
//! An upload is authorized before its body is read (the web layer asks [`super::require`]), then
//! streamed to a scratch file and sealed into the store with no connection held, and recorded in
//! one transaction: a version is listed only once its bytes are stored.

use base64::Engine;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Caller, Kind, Op, Services};
use crate::access::{Action, Resource};
use crate::artifacts::sealed::DataKey;
use crate::db::{self, buckets::BucketRow, buckets::ObjectVersion};
use crate::error::AppError;

/// A bucket's name, S3's rules: 3-63 of lowercase letters, digits, `.` and `-`, starting and
/// ending with a letter or digit, no `..`, not an IP address. Lowercase only, so a name is
/// canonical as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketName(String);

impl BucketName {
    pub fn parse(text: &str) -> Result<Self, AppError> {
        let bad = |why: &str| AppError::validation("bucketName", why);
        if !(3..=63).contains(&text.len()) {
            return Err(bad("must be 3 to 63 characters"));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return Err(bad("may hold only lowercase letters, digits, '.' and '-'"));
        }
        let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !edge(text.as_bytes()[0]) || !edge(text.as_bytes()[text.len() - 1]) {
            return Err(bad("must start and end with a letter or digit"));
        }
        if text.contains("..") {
            return Err(bad("must not hold two dots in a row"));
        }
        if text.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(bad("must not be an IP address"));
        }
        Ok(BucketName(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An object's key: 1-1024 bytes, no control characters.
pub fn check_key(key: &str) -> Result<(), AppError> {
    if key.is_empty() || key.len() > 1024 {
        return Err(AppError::validation("key", "must be 1 to 1024 bytes"));
    }
    if key.chars().any(char::is_control) {
        return Err(AppError::validation(
            "key",
            "must not hold control characters",
        ));
    }
    Ok(())
}

fn key_context(bucket_id: Uuid, key_id: &str) -> String {
    format!("bucket-data-key:{bucket_id}:{key_id}")
}

fn no_such_bucket(name: &str) -> AppError {
    AppError::NotFound {
        code: "NoSuchBucket",
        message: format!("There is no bucket named {name}"),
    }
}

/// The bucket's data key, opened.
pub(super) fn open_key(s: &Services, row: &BucketRow) -> Result<DataKey, AppError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bytes = s
        .root_key
        .open(&row.wrapped_key, &key_context(row.id, &row.key_id))
        .and_then(|text| b64.decode(text).ok())
        .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
        .ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "a bucket's data key does not open with the root key"
            ))
        })?;
    Ok(DataKey::new(row.key_id.clone(), bytes))
}

/// A bucket as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketView {
    pub name: String,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub versions: i64,
    pub bytes: i64,
}

pub async fn create_bucket(s: &Services, c: &Caller, name: &BucketName) -> Result<(), AppError> {
    Op::run(
        s,
        c,
        Kind::Change,
        Action::CreateBucket,
        Resource::bucket(name.as_str()),
        json!({"bucketName": name.as_str()}),
        async |op| {
            let id = Uuid::new_v4();
            let key = DataKey::generate(Uuid::new_v4().to_string());
            let b64 = base64::engine::general_purpose::STANDARD;
            let wrapped = s
                .root_key
                .seal(&b64.encode(key.bytes()), &key_context(id, &key.id));
            let row = BucketRow {
                id,
                name: name.as_str().to_string(),
                key_id: key.id.clone(),
                wrapped_key: wrapped,
                created_by: op.caller().user_name().to_string(),
                created_at: op.now(),
            };
            if !db::buckets::insert(op.conn(), &row).await? {
                return Err(AppError::Rejected {
                    code: "BucketAlreadyExists",
                    message: format!("A bucket named {} exists already", name.as_str()),
                });
            }
            Ok(())
        },
    )
    .await
}

pub async fn list_buckets(s: &Services, c: &Caller) -> Result<Vec<BucketView>, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::ListBuckets,
        Resource::All,
        json!({}),
        async |op| {
            Ok(db::buckets::list(op.conn())
                .await?
                .into_iter()
                .map(|(b, versions, bytes)| BucketView {
                    name: b.name,
                    created_by: b.created_by,
                    created_at: b.created_at,
                    versions,
                    bytes,
                })
                .collect())
        },
    )
    .await
}

/// Deletes an empty bucket (S3's rule: a bucket with objects is refused, BucketNotEmpty).
pub async fn delete_bucket(s: &Services, c: &Caller, name: &BucketName) -> Result<(), AppError> {
    Op::run(
        s,
        c,
        Kind::Change,
        Action::DeleteBucket,
        Resource::bucket(name.as_str()),
        json!({"bucketName": name.as_str()}),
        async |op| {
            let row = db::buckets::find(op.conn(), name.as_str())
                .await?
                .ok_or_else(|| no_such_bucket(name.as_str()))?;
            if !db::buckets::delete_empty(op.conn(), row.id).await? {
                return Err(AppError::Rejected {
                    code: "BucketNotEmpty",
                    message: format!(
                        "The bucket {} holds objects; a bucket is deleted once it is empty",
                        name.as_str()
                    ),
                });
            }
            Ok(())
        },
    )
    .await
}

/// An upload, streamed by the web layer into a scratch file.
pub struct Upload {
    pub file: std::fs::File,
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

/// PutObject: a new version of `key` in the bucket. The caller was authorized before the body was
/// read; this authorizes again (the policy may have changed meanwhile), seals the bytes into the
/// store, and records the version.
pub async fn put_object(
    s: &Services,
    c: &Caller,
    bucket: &BucketName,
    key: &str,
    upload: Upload,
) -> Result<ObjectVersion, AppError> {
    check_key(key)?;
    let size = i64::try_from(upload.size).map_err(|_| AppError::validation("body", "too large"))?;
    let etag = upload.sha256.clone();
    Op::run_prepared(
        s,
        c,
        Kind::Change,
        Action::PutObject,
        Resource::bucket(bucket.as_str()),
        json!({"bucketName": bucket.as_str(), "key": key, "size": size, "etag": etag}),
        async || {
            let row = {
                let mut conn = s.pool.acquire().await?;
                db::buckets::find(&mut conn, bucket.as_str())
                    .await?
                    .ok_or_else(|| no_such_bucket(bucket.as_str()))?
            };
            let data_key = open_key(s, &row)?;
            let store = s.artifacts.clone().ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("this server has no artifact store"))
            })?;
            let stored = store.put(&data_key, upload.file).await.map_err(|e| {
                AppError::Internal(anyhow::Error::new(e).context("storing an upload"))
            })?;
            Ok((row, stored))
        },
        async |op, (row, stored)| {
            let version = ObjectVersion {
                version_id: Uuid::new_v4(),
                object_key: key.to_string(),
                address: stored.address.as_str().to_string(),
                size,
                etag: etag.clone(),
                uploaded_by: op.caller().user_name().to_string(),
                uploaded_at: op.now(),
            };
            db::buckets::insert_version(op.conn(), row.id, &version).await?;
            op.add_audit_param("versionId", json!(version.version_id));
            // The new version starts every pipeline whose Upload source watches this key, with
            // it pinned, in the upload's transaction.
            let mut started = Vec::new();
            for pipeline in watchers(op.conn(), bucket.as_str(), key).await? {
                let (name, action) = pipeline;
                let id = super::executions::start_in(
                    op,
                    &name,
                    super::executions::StartRequest {
                        source_revisions: vec![super::executions::SourceRevisionOverride {
                            action_name: action,
                            revision_type: "S3_OBJECT_VERSION_ID".into(),
                            revision_value: version.version_id.to_string(),
                        }],
                        ..Default::default()
                    },
                    super::executions::Trigger {
                        trigger_type: "PutActionRevision",
                        detail: format!(
                            "{} uploaded {}/{}",
                            version.uploaded_by,
                            bucket.as_str(),
                            key
                        ),
                    },
                )
                .await?;
                started.push(id);
            }
            op.add_audit_param("startedExecutions", json!(started));
            if !started.is_empty() {
                s.wake.notify_waiters();
            }
            Ok(version)
        },
    )
    .await
}

/// The pipelines (and their source action) whose current version has an Upload source on
/// `bucket` and `key`.
async fn watchers(
    conn: &mut sqlx::PgConnection,
    bucket: &str,
    key: &str,
) -> Result<Vec<(String, String)>, AppError> {
    let mut found = Vec::new();
    for (_, name, _, text) in db::pipelines::current_declarations(conn).await? {
        let Ok(decl) = serde_json::from_str::<crate::pipeline::wire::PipelineDeclaration>(&text)
        else {
            continue;
        };
        for a in decl.stages.first().into_iter().flat_map(|st| &st.actions) {
            let config = a.configuration.clone().unwrap_or_default();
            if a.action_type_id.provider == "Upload"
                && config.get("Bucket").map(String::as_str) == Some(bucket)
                && config.get("ObjectKey").map(String::as_str) == Some(key)
            {
                found.push((name.clone(), a.name.clone()));
            }
        }
    }
    Ok(found)
}

/// The Upload source (`Source/Sluice/Upload/1`) for one attempt: the pinned version (a trigger's
/// or an earlier attempt's) or the newest of the key, opened with the bucket's key and sealed
/// again as the pipeline's artifact; `VersionId` and `ETag` as variables.
pub async fn fetch_version(
    s: &Services,
    ctx: &crate::providers::Context,
) -> Result<crate::providers::Output, String> {
    let internal = |e: AppError| {
        tracing::error!(error = %e, "an Upload source failed to read its bucket");
        "Sluice could not read the bucket; the problem has been logged".to_string()
    };
    let bucket_text = ctx
        .configuration
        .get("Bucket")
        .ok_or("the action has no Bucket")?;
    let bucket = BucketName::parse(bucket_text).map_err(|e| e.public_message())?;
    let key = ctx
        .configuration
        .get("ObjectKey")
        .ok_or("the action has no ObjectKey")?;
    let output_name = ctx
        .action
        .output_artifacts
        .iter()
        .flatten()
        .next()
        .map(|o| o.name.clone())
        .ok_or("the action declares no output artifact")?;
    let (row, version) = {
        let mut conn = s.pool.acquire().await.map_err(|e| internal(e.into()))?;
        let row = db::buckets::find(&mut conn, bucket.as_str())
            .await
            .map_err(|e| internal(e.into()))?
            .ok_or_else(|| format!("there is no bucket named {}", bucket.as_str()))?;
        let versions = db::buckets::versions(&mut conn, row.id, Some(key), 1000)
            .await
            .map_err(|e| internal(e.into()))?;
        let version = match &ctx.revision {
            Some(pinned) => versions
                .into_iter()
                .find(|v| v.version_id.to_string() == *pinned)
                .ok_or_else(|| format!("{}/{key} has no version {pinned}", bucket.as_str()))?,
            None => versions.into_iter().next().ok_or_else(|| {
                format!(
                    "{}/{key} has no version yet: upload one to start the pipeline",
                    bucket.as_str()
                )
            })?,
        };
        (row, version)
    };
    let bucket_key = open_key(s, &row).map_err(internal)?;
    let address = crate::artifacts::store::Address::parse(&version.address)
        .ok_or_else(|| internal(AppError::Internal(anyhow::anyhow!("a version's address"))))?;
    let (plain, _) = ctx
        .store
        .get(&bucket_key, &address)
        .await
        .map_err(|e| format!("the version {} cannot be read: {e}", version.version_id))?;
    let stored = ctx
        .store
        .put(&ctx.key, plain)
        .await
        .map_err(|e| format!("the version {} cannot be stored: {e}", version.version_id))?;
    ctx.log.line(&format!(
        "[Sluice] {}/{key} version {} ({} bytes, uploaded by {})",
        bucket.as_str(),
        version.version_id,
        version.size,
        version.uploaded_by
    ));
    Ok(crate::providers::Output {
        summary: Some(format!(
            "Version {} of {}/{key}",
            version.version_id,
            bucket.as_str()
        )),
        variables: [
            ("VersionId".to_string(), version.version_id.to_string()),
            ("ETag".to_string(), version.etag.clone()),
        ]
        .into(),
        artifacts: vec![(output_name, stored)],
        commits: Vec::new(),
    })
}

/// ListObjectVersions: a bucket's versions, newest first (of one key, when given), at most 1000.
pub async fn list_versions(
    s: &Services,
    c: &Caller,
    bucket: &BucketName,
    key: Option<&str>,
) -> Result<Vec<ObjectVersion>, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::ListObjectVersions,
        Resource::bucket(bucket.as_str()),
        json!({"bucketName": bucket.as_str(), "key": key}),
        async |op| {
            let row = db::buckets::find(op.conn(), bucket.as_str())
                .await?
                .ok_or_else(|| no_such_bucket(bucket.as_str()))?;
            Ok(db::buckets::versions(op.conn(), row.id, key, 1000).await?)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for good in ["releases", "my.site-assets", "a1b", &"x".repeat(63)] {
            assert!(BucketName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            &"x".repeat(64),
            "Releases",
            "my_bucket",
            "-start",
            "end.",
            "two..dots",
            "192.168.1.1",
            "spa ce",
            "ünï",
        ] {
            assert!(BucketName::parse(bad).is_err(), "{bad}");
        }
        assert!(check_key("builds/app-1.2.zip").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("a\nb").is_err());
        assert!(check_key(&"k".repeat(1025)).is_err());
    }
}
