//! Receiving an object's bytes (a bucket upload, from the API or the console): streamed into the
//! artifact store's scratch directory in chunks, hashed as they come, refused past the limit
//! whether declared or not. Never whole in memory.

use actix_web::HttpRequest;
use actix_web::web;
use futures_util::StreamExt;
use sha2::Digest;
use std::io::Write;

use crate::error::AppError;
use crate::ops::Services;
use crate::ops::buckets::Upload;

/// Why a body was not received.
pub enum Refused {
    TooLarge,
    CutOff,
    Internal(AppError),
}

/// Whether the request declares more than `limit` bytes.
pub fn declares_too_much(req: &HttpRequest, limit: u64) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > limit)
}

pub async fn receive(s: &Services, mut body: web::Payload) -> Result<Upload, Refused> {
    let limit = s.artifact_limit;
    let internal = |e: std::io::Error, what: &'static str| {
        Refused::Internal(AppError::Internal(anyhow::Error::new(e).context(what)))
    };
    let store = s.artifacts.clone().ok_or_else(|| {
        Refused::Internal(AppError::Internal(anyhow::anyhow!(
            "this server has no artifact store"
        )))
    })?;
    let mut file = store
        .scratch_file()
        .map_err(|e| internal(e, "a scratch file"))?;
    let mut hash = sha2::Sha256::new();
    let mut size: u64 = 0;
    {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, &mut file);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| Refused::CutOff)?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(Refused::TooLarge);
            }
            hash.update(&chunk);
            out.write_all(&chunk)
                .map_err(|e| internal(e, "writing an upload"))?;
        }
        out.flush().map_err(|e| internal(e, "writing an upload"))?;
    }
    Ok(Upload {
        file,
        size,
        sha256: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    })
}
