//! Upload buckets through the API: CreateBucket, ListBuckets, DeleteBucket, ListObjectVersions
//! (JSON, like every operation), and `PUT /api/v1/buckets/{bucket}/objects/{key}` whose body is
//! the object, streamed to a scratch file under the server's artifact size limit.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, authenticate, epoch, parse};
use crate::access::{Action, Resource};
use crate::ops::buckets::{self, BucketName};
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
    body: web::Payload,
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
    if crate::web::upload::declares_too_much(&req, limit) {
        return Err(too_large());
    }
    let upload = match crate::web::upload::receive(s, body).await {
        Ok(upload) => upload,
        Err(crate::web::upload::Refused::TooLarge) => return Err(too_large()),
        Err(crate::web::upload::Refused::CutOff) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "The upload was cut off before its end",
            ));
        }
        Err(crate::web::upload::Refused::Internal(e)) => return Err(e.into()),
    };
    let version = buckets::put_object(s, &caller, &name, &key, upload).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-amz-json-1.1")
        .json(json!({"versionId": version.version_id, "eTag": version.etag, "size": version.size})))
}
