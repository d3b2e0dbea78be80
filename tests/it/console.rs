//! The console shell: layout, the htmx convention, error pages.

use crate::harness::{migration_count, spawn_app};

#[tokio::test]
async fn the_status_page_shows_version_database_and_migrations() {
    let app = spawn_app().await;
    app.setup_admin().await;
    let res = app.get("/status").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let html = res.text().await.unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains(&format!("Sluice {}", env!("CARGO_PKG_VERSION"))),
        "footer with version"
    );
    assert!(html.contains("External (DATABASE_URL)"));
    assert!(
        html.contains("<dt>PostgreSQL</dt><dd>1"),
        "server version shown"
    );
    assert!(html.contains("platform"), "migration description listed");
    let n = migration_count();
    assert!(html.contains(&format!("{n} of {n} applied")));
    assert!(html.contains(">Ready<"));
    assert!(
        html.contains(r#"<a href="/status">Server status</a>"#),
        "linked from the footer"
    );
    // No inline script or style anywhere: the CSP would block it.
    assert!(!html.contains("<script>") && !html.contains("<style") && !html.contains(" style="));
    assert!(
        !html.contains(" onclick") && !html.contains(" onload"),
        "no inline event handlers"
    );
}

#[tokio::test]
async fn htmx_requests_get_only_the_content_block() {
    let app = spawn_app().await;
    app.setup_admin().await;
    let full = app.get("/status").await;
    assert_eq!(full.headers()["vary"], "HX-Request");
    let full = full.text().await.unwrap();
    let partial = app
        .client
        .get(app.url("/status"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), 200);
    assert_eq!(partial.headers()["vary"], "HX-Request");
    let partial = partial.text().await.unwrap();
    assert!(
        !partial.contains("<html") && !partial.contains("site-header"),
        "{partial}"
    );
    assert!(partial.contains("<h1>Server status</h1>"));
    assert!(
        full.contains(partial.trim()),
        "the partial is exactly the page's content block"
    );
}

#[tokio::test]
async fn unknown_pages_get_the_404_page_in_the_layout() {
    let app = spawn_app().await;
    let res = app.get("/no/such/page").await;
    assert_eq!(res.status(), 404);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let html = res.text().await.unwrap();
    assert!(html.contains("<!DOCTYPE html>") && html.contains("site-header"));
    assert!(html.contains("Page not found"));
    assert!(html.contains(&request_id));

    let partial = app
        .client
        .get(app.url("/no/such/page"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), 404);
    let partial = partial.text().await.unwrap();
    assert!(partial.contains("Page not found") && !partial.contains("<html"));
}

#[tokio::test]
async fn unsupported_methods_get_the_405_page() {
    let app = spawn_app().await;
    let res = app.client.delete(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert!(res.text().await.unwrap().contains("Method not allowed"));
}

#[tokio::test]
async fn internal_errors_show_a_generic_page_with_the_request_id() {
    let app = spawn_app().await;
    app.setup_admin().await;
    assert_eq!(app.get("/").await.status(), 200);
    app.db.drop_now().await;
    let res = app.get("/").await;
    assert_eq!(res.status(), 500);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let html = res.text().await.unwrap();
    assert!(html.contains("Something went wrong"));
    assert!(html.contains(&format!("<code>{request_id}</code>")));
    assert!(html.contains("site-header"), "rendered in the layout");
    for internal in [
        "sqlx",
        "database \"",
        "terminating",
        "PgDatabaseError",
        "connection",
    ] {
        assert!(
            !html.contains(internal),
            "internal detail {internal:?} leaked"
        );
    }
}
