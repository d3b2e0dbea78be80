//! HTTP basics: probes, static files, security headers, body limits.

use crate::harness::{TestDatabase, spawn_app, spawn_app_on, spawn_app_with};

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn readyz_is_ready_with_a_migrated_database() {
    let app = spawn_app().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ready"}));
}

#[tokio::test]
async fn readyz_is_unavailable_when_the_database_is_gone() {
    let app = spawn_app().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.db.drop_now().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["reason"], "database unreachable");
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn readyz_is_unavailable_while_migrations_are_pending() {
    let app = spawn_app_on(TestDatabase::empty().await).await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("migrations not applied (0 of "),
        "{reason}"
    );
}

#[tokio::test]
async fn static_files_have_content_types_etags_and_answer_304() {
    let app = spawn_app().await;
    let res = app.get("/static/app.css").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(res.text().await.unwrap().contains(".status-succeeded"));

    let res = app
        .client
        .get(app.url("/static/app.css"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(res.headers()["etag"], etag.as_str());
    assert!(res.bytes().await.unwrap().is_empty());

    let stale = app
        .client
        .get(app.url("/static/app.css"))
        .header("If-None-Match", "\"0000\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);

    let js = app.get("/static/vendor/htmx-2.0.11.min.js").await;
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let svg = app.get("/static/favicon.svg").await;
    assert_eq!(
        svg.headers()["content-type"],
        "image/svg+xml; charset=utf-8"
    );
}

#[tokio::test]
async fn versioned_static_urls_are_cached_for_a_year() {
    let app = spawn_app().await;
    app.setup_admin().await;
    let page = app.get("/").await.text().await.unwrap();
    let href = page
        .split("href=\"")
        .map(|s| s.split('"').next().unwrap())
        .find(|h| h.starts_with("/static/app.css?v="))
        .expect("the layout links the stylesheet by version")
        .to_string();
    let res = app.get(&href).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    // An outdated version is served, but revalidated.
    let old = app.get("/static/app.css?v=0123456789abcdef").await;
    assert_eq!(old.headers()["cache-control"], "no-cache");
}

#[tokio::test]
async fn unknown_static_files_are_404_pages() {
    let app = spawn_app().await;
    for path in [
        "/static/nope.css",
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in [
        "/",
        "/healthz",
        "/readyz",
        "/static/app.css",
        "/no-such-page",
    ] {
        let res = app.get(path).await;
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp} lacks {directive}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(h.contains_key("x-request-id"), "{path}");
        // Plain http: no HSTS.
        assert!(!h.contains_key("strict-transport-security"), "{path}");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let html = res.text().await.unwrap();
    assert!(html.contains("Request too large"), "{html}");
    assert!(html.contains("<!DOCTYPE html>"));

    // Within the limit the request goes on to routing (no POST route here: 405).
    let res = app
        .client
        .post(app.url("/"))
        .body(vec![b'a'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
}

#[tokio::test]
async fn an_https_public_url_turns_on_hsts() {
    let app = spawn_app_with(TestDatabase::migrated().await, "https://ci.example.com/").await;
    for path in ["/", "/healthz", "/no-such-page"] {
        let res = app.get(path).await;
        assert_eq!(
            res.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains",
            "{path}"
        );
    }
}

#[tokio::test]
async fn head_requests_answer_like_get_without_a_body() {
    let app = spawn_app().await;
    let res = app.client.head(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn responses_are_gzipped_for_clients_that_accept_it() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/static/vendor/htmx-2.0.11.min.js"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let compressed = res.bytes().await.unwrap().len();
    let plain = app.get("/static/vendor/htmx-2.0.11.min.js").await;
    assert!(!plain.headers().contains_key("content-encoding"));
    let plain = plain.bytes().await.unwrap().len();
    assert!(compressed * 2 < plain, "{compressed} vs {plain} bytes");
}
