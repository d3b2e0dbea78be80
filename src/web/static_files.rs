//! Static files (`static/`), embedded in the binary.
//!
//! Pages link to assets through [`asset_url`], which appends the content hash (`?v=…`). A request
//! carrying the current hash is cached for a year (`immutable`); any other is revalidated with the
//! ETag (`no-cache`), answering 304 when unchanged. Vendored files also carry their version in
//! their names.

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::Embed;

use super::error::ConsoleError;

#[derive(Embed)]
#[folder = "static/"]
struct Assets;

/// The short content hash of every embedded file, computed once.
fn hashes() -> &'static HashMap<String, String> {
    static HASHES: OnceLock<HashMap<String, String>> = OnceLock::new();
    HASHES.get_or_init(|| {
        Assets::iter()
            .filter_map(|name| {
                let file = Assets::get(&name)?;
                Some((name.to_string(), short_hash(&file.metadata.sha256_hash())))
            })
            .collect()
    })
}

fn short_hash(digest: &[u8; 32]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The URL of an embedded asset, versioned by content. Panics in tests if the asset is missing,
/// which is a programming error (templates name assets statically).
pub fn asset_url(path: &str) -> String {
    match hashes().get(path) {
        Some(hash) => format!("/static/{path}?v={hash}"),
        None => {
            debug_assert!(false, "unknown asset {path}");
            format!("/static/{path}")
        }
    }
}

/// `GET /static/{path}`.
pub async fn serve(
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let path = path.into_inner();
    let (Some(file), Some(hash)) = (Assets::get(&path), hashes().get(&path)) else {
        return Err(ConsoleError::NotFound);
    };
    let etag = format!("\"{hash}\"");
    let requested_version = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("v").cloned());
    let cache_control = if requested_version.as_deref() == Some(hash.as_str()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| matches!(t.trim(), "*") || t.trim().trim_start_matches("W/") == etag)
        });
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache_control));
    if not_modified {
        return Ok(response.finish());
    }
    let mime = file.metadata.mimetype();
    let content_type =
        if mime.starts_with("text/") || mime.ends_with("javascript") || mime == "image/svg+xml" {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_string()
        };
    let content_type = HeaderValue::from_str(&content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok(response
        .insert_header((header::CONTENT_TYPE, content_type))
        .body(file.data.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_urls_carry_the_content_hash() {
        let url = asset_url("app.css");
        let (path, version) = url.split_once("?v=").expect("versioned");
        assert_eq!(path, "/static/app.css");
        assert_eq!(version.len(), 16);
    }

    #[test]
    fn vendored_htmx_is_embedded() {
        assert!(Assets::get("vendor/htmx-2.0.11.min.js").is_some());
        assert!(Assets::get("vendor/htmx-ext-sse-2.2.4.min.js").is_some());
    }
}
