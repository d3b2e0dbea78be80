//! Upload buckets through the API: CreateBucket, ListBuckets, DeleteBucket, ListObjectVersions
//! (JSON, like every operation), and `PUT /api/v1/buckets/{bucket}/objects/{key}` whose body is
//! the object, streamed to a scratch file under the server's artifact size limit.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;
use std::io::Write;

use super::{ApiError, authenticate, epoch, parse};
use crate::access::{Action, Resource};
use crate::error::AppError;
use crate::ops::buckets::{self, BucketName, Upload};
use crate::ops::{Caller, Services};
use crate::web::AppState;

pub const OPERATIONS: &[&str] = &[
    "CreateBucket",
    "ListBuckets",
    "DeleteBucket",
    "ListObjectVersions",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ByName {
    bucket_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Versions {
    bucket_name: String,
    key: Option<String>,
}

pub async fn call(
    s: &Services,
    c: &Caller,
    operation: &str,
    input: Value,
) -> Result<Value, ApiError> {
    Ok(match operation {
        "CreateBucket" => {
            let i: ByName = parse(input)?;
            let name = BucketName::parse(&i.bucket_name)?;
            buckets::create_bucket(s, c, &name).await?;
            json!({"bucketName": name.as_str()})
        }
        "ListBuckets" => {
            let list = buckets::list_buckets(s, c).await?;
            json!({"buckets": list.iter().map(|b| json!({
                "bucketName": b.name, "createdBy": b.created_by, "creationDate": epoch(b.created_at),
                "versions": b.versions, "bytes": b.bytes,
            })).collect::<Vec<_>>()})
        }
        "DeleteBucket" => {
            let i: ByName = parse(input)?;
            let name = BucketName::parse(&i.bucket_name)?;
            buckets::delete_bucket(s, c, &name).await?;
            json!({})
        }
        "ListObjectVersions" => {
            let i: Versions = parse(input)?;
            let name = BucketName::parse(&i.bucket_name)?;
            let versions = buckets::list_versions(s, c, &name, i.key.as_deref()).await?;
            json!({"versions": versions.iter().map(|v| json!({
                "key": v.object_key, "versionId": v.version_id, "size": v.size, "eTag": v.etag,
                "uploadedBy": v.uploaded_by, "lastModified": epoch(v.uploaded_at),
            })).collect::<Vec<_>>()})
        }
        _ => unreachable!("dispatch checks the operation"),
    })
}

/// `PUT /api/v1/buckets/{bucket}/objects/{key}`: authorized before a byte is read; the body goes
/// to a scratch file in 64 KiB chunks (never whole in memory), hashed as it comes, and is refused
/// (413, nothing stored) past the artifact limit, declared or not.
pub async fn put_object(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&req, &state).await?;
    let (bucket, key) = path.into_inner();
    let name = BucketName::parse(&bucket)?;
    buckets::check_key(&key)?;
    let s = &state.services;
    crate::ops::require(
        s,
        &caller,
        Action::PutObject,
        &Resource::bucket(name.as_str()),
        json!({"bucketName": name.as_str(), "key": key}),
    )
    .await?;
    let limit = s.artifact_limit;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "EntityTooLarge",
            format!("An object is at most {limit} bytes (--max-artifact-bytes)"),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // In the store's scratch directory (on disk, where sealing works), never in memory.
    let store = s.artifacts.clone().ok_or_else(|| {
        ApiError::from(AppError::Internal(anyhow::anyhow!(
            "this server has no artifact store"
        )))
    })?;
    let mut file = store.scratch_file().map_err(|e| {
        ApiError::from(AppError::Internal(
            anyhow::Error::new(e).context("a scratch file"),
        ))
    })?;
    let mut hash = sha2::Sha256::new();
    let mut size: u64 = 0;
    {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, &mut file);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "IncompleteBody",
                    "The upload was cut off before its end",
                )
            })?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(too_large());
            }
            hash.update(&chunk);
            out.write_all(&chunk).map_err(|e| {
                ApiError::from(AppError::Internal(
                    anyhow::Error::new(e).context("writing an upload"),
                ))
            })?;
        }
        out.flush().map_err(|e| {
            ApiError::from(AppError::Internal(
                anyhow::Error::new(e).context("writing an upload"),
            ))
        })?;
    }
    let sha256: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let version =
        buckets::put_object(s, &caller, &name, &key, Upload { file, size, sha256 }).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-amz-json-1.1")
        .json(json!({"versionId": version.version_id, "eTag": version.etag, "size": version.size})))
}
