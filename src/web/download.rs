//! Sending an artifact: opened (hash and tags checked) into a scratch file, then streamed in
//! 64 KiB chunks, so no artifact is ever whole in memory. The console and the API both answer
//! with this.

use actix_web::HttpResponse;
use actix_web::http::header;
use futures_util::stream;
use tokio::io::AsyncReadExt;

use crate::error::AppError;
use crate::ops::executions::ArtifactDownload;

pub async fn send(d: ArtifactDownload) -> Result<HttpResponse, AppError> {
    let ArtifactDownload {
        store,
        key,
        address,
        name,
    } = d;
    let (file, size) = store
        .get(&key, &address)
        .await
        .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("opening an artifact")))?;
    let file = tokio::fs::File::from_std(file);
    let chunks = stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(actix_web::web::Bytes::from(buf)),
                    file,
                ))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let filename: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}.zip\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(actix_web::body::SizedStream::new(size, chunks)))
}
