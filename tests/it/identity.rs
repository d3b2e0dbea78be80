//! Users, sign-in, sessions, CSRF, throttling and the console's access control, through the front
//! door.

use time::Duration;

use crate::harness::{ADMIN, ADMIN_PASSWORD, TestApp, client, spawn_app};

const PASSWORD: &str = "a long and unusual passphrase 42";

/// An app with an administrator signed in on `app.client`.
async fn admin_app() -> TestApp {
    let app = spawn_app().await;
    app.setup_admin().await;
    app
}

/// Creates a user with a password and (optionally) one policy, as the administrator.
async fn create_user(app: &TestApp, name: &str, policy: &str) {
    let res = app
        .post_form(
            &app.client,
            "/admin/users",
            &[
                ("user_name", name),
                ("password", PASSWORD),
                ("policy", policy),
            ],
        )
        .await;
    assert_eq!(
        res.status(),
        303,
        "create {name}: {}",
        res.text().await.unwrap()
    );
}

async fn body(res: reqwest::Response) -> String {
    res.text().await.unwrap()
}

#[tokio::test]
async fn setup_exists_only_until_the_first_user() {
    let app = spawn_app().await;
    // Everything sends a newcomer to set-up.
    let res = app.get("/").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login?next=%2F");
    let res = app.get("/login").await;
    assert_eq!(res.headers()["location"], "/setup");

    // A weak password is refused with the reason, keeping the user name.
    let res = app
        .client
        .post(app.url("/setup"))
        .header("Origin", &app.address)
        .form(&[
            ("username", "root"),
            ("password", "password1234"),
            ("password_confirm", "password1234"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let html = body(res).await;
    assert!(html.contains("too easy to guess"), "{html}");
    assert!(html.contains(r#"value="root""#));

    app.setup_admin().await;
    assert_eq!(app.get("/setup").await.status(), 404);
    let again = app
        .client
        .post(app.url("/setup"))
        .header("Origin", &app.address)
        .form(&[
            ("username", "mallory"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404, "set-up answers 404 for good");
    // The administrator is signed in and sees the Admin section.
    let html = body(app.get("/").await).await;
    assert!(html.contains(r#"href="/admin""#), "{html}");
}

#[tokio::test]
async fn sign_in_sets_a_fresh_http_only_session_cookie_and_sign_out_ends_it() {
    let app = admin_app().await;
    let browser = client();
    let res = browser
        .post(app.url("/login"))
        .header("Origin", &app.address)
        .form(&[
            ("username", ADMIN),
            ("password", ADMIN_PASSWORD),
            ("next", "/admin/users"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/admin/users");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("sluice_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    let first_token = cookie.split(';').next().unwrap().to_string();

    // A second sign-in gets a different token (no fixation).
    let other = app.sign_in(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(other.get(app.url("/")).send().await.unwrap().status(), 200);
    let second = client()
        .post(app.url("/login"))
        .header("Origin", &app.address)
        .form(&[("username", ADMIN), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    let second_token = second.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(first_token, second_token);

    // Sign out ends the session: the cookie no longer works.
    assert_eq!(
        browser.get(app.url("/")).send().await.unwrap().status(),
        200
    );
    let res = app.post_form(&browser, "/logout", &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login");
    let replay = client()
        .get(app.url("/"))
        .header("Cookie", &first_token)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303, "a signed-out token is refused");
}

#[tokio::test]
async fn wrong_credentials_never_say_which_part_was_wrong() {
    let app = admin_app().await;
    for (user, password) in [
        (ADMIN, "not the password at all"),
        ("nobody-here", ADMIN_PASSWORD),
    ] {
        let res = client()
            .post(app.url("/login"))
            .header("Origin", &app.address)
            .form(&[("username", user), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        let html = body(res).await;
        assert!(
            html.contains("The user name or password is not correct."),
            "{html}"
        );
        assert!(
            html.contains(&format!(r#"value="{user}""#)),
            "keeps the user name"
        );
    }
}

#[tokio::test]
async fn the_sixth_failure_is_throttled_until_the_window_passes() {
    let app = admin_app().await;
    let attempt = |password: &'static str| {
        let app = &app;
        async move {
            client()
                .post(app.url("/login"))
                .header("Origin", &app.address)
                .form(&[("username", ADMIN), ("password", password)])
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..5 {
        assert_eq!(attempt("wrong password, again").await.status(), 401);
    }
    let res = attempt("wrong password, again").await;
    assert_eq!(res.status(), 429);
    let retry: i64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Throttling is checked before the password: the right one is refused too.
    assert_eq!(attempt(ADMIN_PASSWORD).await.status(), 429);

    app.clock.advance(Duration::minutes(16));
    assert_eq!(
        attempt(ADMIN_PASSWORD).await.status(),
        303,
        "the window has passed"
    );

    // Failures and the lock-out are in the audit log.
    let html = body(app.get("/admin/audit?event=sluice%3AConsoleLogin").await).await;
    assert!(html.contains("Throttled"), "{html}");
    assert!(html.contains("Failure"));
}

#[tokio::test]
async fn sessions_end_when_idle_and_at_their_absolute_lifetime() {
    let app = admin_app().await;
    let user = app.sign_in(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(user.get(app.url("/")).send().await.unwrap().status(), 200);
    app.clock.advance(Duration::minutes(31));
    assert_eq!(
        user.get(app.url("/")).send().await.unwrap().status(),
        303,
        "idle for 31 minutes"
    );

    let active = app.sign_in(ADMIN, ADMIN_PASSWORD).await;
    for _ in 0..26 {
        // Active every 29 minutes: never idle, but past 12 hours in all.
        app.clock.advance(Duration::minutes(29));
        let status = active.get(app.url("/")).send().await.unwrap().status();
        if status == 303 {
            return;
        }
        assert_eq!(status, 200);
    }
    panic!("the session outlived its 12-hour lifetime");
}

#[tokio::test]
async fn csrf_needs_the_token_and_the_same_origin() {
    let app = admin_app().await;
    let token = app.csrf_token(&app.client).await;
    let form = |token: &str| {
        vec![
            ("user_name", "eve".to_string()),
            ("password", PASSWORD.to_string()),
            ("csrf_token", token.to_string()),
        ]
    };

    let missing = app
        .client
        .post(app.url("/admin/users"))
        .header("Origin", &app.address)
        .form(&[("user_name", "eve"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 403);
    let wrong = app
        .client
        .post(app.url("/admin/users"))
        .header("Origin", &app.address)
        .form(&form("not-the-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let cross_site = app
        .client
        .post(app.url("/admin/users"))
        .header("Sec-Fetch-Site", "cross-site")
        .header("Origin", "https://evil.example")
        .form(&form(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let no_origin = app
        .client
        .post(app.url("/admin/users"))
        .form(&form(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(
        no_origin.status(),
        403,
        "no Sec-Fetch-Site, Origin or Referer"
    );

    // None of them created the user; each refusal is audited.
    let html = body(app.get("/admin/users").await).await;
    assert!(!html.contains(">eve<"));
    let audit = body(app.get("/admin/audit?event=sluice%3ACsrfCheck").await).await;
    assert_eq!(
        audit
            .matches(r#"class="mono audit-event">sluice:CsrfCheck<"#)
            .count(),
        4,
        "{audit}"
    );

    // With both, it works; the header form of the token works too (htmx).
    let ok = app
        .client
        .post(app.url("/admin/users"))
        .header("Sec-Fetch-Site", "same-origin")
        .header("X-CSRF-Token", &token)
        .form(&[("user_name", "eve"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
}

#[tokio::test]
async fn a_read_only_user_sees_no_admin_and_gets_403_naming_the_permission() {
    let app = admin_app().await;
    create_user(&app, "viewer", "AWSCodePipeline_ReadOnlyAccess").await;
    let viewer = app.sign_in("viewer", PASSWORD).await;
    let home = body(viewer.get(app.url("/")).send().await.unwrap()).await;
    assert!(!home.contains(r#"href="/admin""#), "no Admin link");
    let res = viewer.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let html = body(res).await;
    assert!(
        html.contains("You are not allowed to perform iam:ListUsers on *"),
        "{html}"
    );
    let res = app
        .post_form(
            &viewer,
            "/admin/users",
            &[("user_name", "sneaky"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(
        body(res)
            .await
            .contains("iam:CreateUser on arn:sluice:iam:::user/sneaky")
    );

    // Both refusals are audited with AccessDenied.
    let audit = body(
        app.get("/admin/audit?outcome=AccessDenied&user=viewer")
            .await,
    )
    .await;
    assert!(
        audit.contains("iam:ListUsers") && audit.contains("iam:CreateUser"),
        "{audit}"
    );

    // Each event opens whole: every field, the request parameters and its place in the chain.
    let link = audit
        .split(r#"href="/admin/audit/events/"#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let res = app.get(&format!("/admin/audit/events/{link}")).await;
    assert_eq!(res.status(), 200);
    let event = body(res).await;
    for field in [
        "Outcome",
        "AccessDenied",
        "Error message",
        "viewer",
        "Resource",
        "arn:sluice:iam:::user/sneaky",
        "Source address",
        "User agent",
        "Request id",
        "Request parameters",
        "Previous hash",
    ] {
        assert!(event.contains(field), "{field}: {event}");
    }
    assert!(event.contains(&link));
    // The viewer may not look up events; ids that name no event are not found.
    assert_eq!(
        viewer
            .get(app.url(&format!("/admin/audit/events/{link}")))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    for missing in ["6f1f8a8e-1c2b-4d3e-9f00-000000000009", "not-an-id", "%00"] {
        let res = app.get(&format!("/admin/audit/events/{missing}")).await;
        assert_eq!(res.status(), 404, "{missing}");
    }
}

#[tokio::test]
async fn a_disabled_user_is_out_at_once() {
    let app = admin_app().await;
    create_user(&app, "temp", "AWSCodePipeline_ReadOnlyAccess").await;
    let temp = app.sign_in("temp", PASSWORD).await;
    assert_eq!(temp.get(app.url("/")).send().await.unwrap().status(), 200);
    let res = app
        .post_form(
            &app.client,
            "/admin/users/temp/enabled",
            &[("enabled", "false")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        temp.get(app.url("/")).send().await.unwrap().status(),
        303,
        "session ended"
    );
    let res = client()
        .post(app.url("/login"))
        .header("Origin", &app.address)
        .form(&[("username", "temp"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a disabled user cannot sign in");
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions() {
    let app = admin_app().await;
    let elsewhere = app.sign_in(ADMIN, ADMIN_PASSWORD).await;
    let new_password = "another fine passphrase 2026";
    let res = app
        .post_form(
            &app.client,
            "/account/password",
            &[
                ("current_password", "wrong current password"),
                ("new_password", new_password),
                ("new_password_confirm", new_password),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(
        body(res)
            .await
            .contains("the current password is not correct")
    );
    let res = app
        .post_form(
            &app.client,
            "/account/password",
            &[
                ("current_password", ADMIN_PASSWORD),
                ("new_password", new_password),
                ("new_password_confirm", new_password),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.get("/").await.status(), 200, "this session stays");
    assert_eq!(
        elsewhere.get(app.url("/")).send().await.unwrap().status(),
        303,
        "the other one ended"
    );
    app.sign_in(ADMIN, new_password).await;
}

#[tokio::test]
async fn user_supplied_text_is_shown_as_text() {
    let app = admin_app().await;
    let res = app
        .post_form(
            &app.client,
            "/admin/policies/new",
            &[
                ("policy_name", "Escaping"),
                ("description", "<script>alert(1)</script>"),
                ("document", r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":"codepipeline:GetPipeline","Resource":"*"}]}"#),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let html = body(app.get("/admin/policies").await).await;
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(
        html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
        "{html}"
    );
}

#[tokio::test]
async fn the_policy_editor_reports_every_problem_and_keeps_the_text() {
    let app = admin_app().await;
    let bad = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{}}]}"#;
    let res = app
        .post_form(
            &app.client,
            "/admin/policies/new",
            &[
                ("policy_name", "Broken"),
                ("description", "d"),
                ("document", bad),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    let html = body(res).await;
    assert!(html.contains("Statement[0].Condition"), "{html}");
    assert!(html.contains("Statement[0].Action"), "{html}");
    assert!(html.contains("s3:GetObject"), "the text is kept");
    assert!(html.contains(r#"value="Broken""#));
}

#[tokio::test]
async fn the_simulator_explains_the_decision() {
    let app = admin_app().await;
    create_user(&app, "approver", "AWSCodePipelineApproverAccess").await;
    let html = body(
        app.get("/admin/users/approver?action=codepipeline%3APutApprovalResult&resource=arn%3Asluice%3Acodepipeline%3A%3A%3Aweb%2FProd%2FGate")
            .await,
    )
    .await;
    assert!(html.contains("Allowed"), "{html}");
    assert!(html.contains("AWSCodePipelineApproverAccess"));
    let html = body(
        app.get("/admin/users/approver?action=codepipeline%3ADeletePipeline&resource=*")
            .await,
    )
    .await;
    assert!(html.contains("Implicitly denied"), "{html}");
}

#[tokio::test]
async fn a_failed_change_leaves_no_success_event() {
    let app = admin_app().await;
    create_user(&app, "dup", "").await;
    let res = app
        .post_form(
            &app.client,
            "/admin/users",
            &[("user_name", "DUP"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(body(res).await.contains("already exists"));
    let audit = body(
        app.get(
            "/admin/audit?event=iam%3ACreateUser&resource=arn%3Asluice%3Aiam%3A%3A%3Auser%2FDUP",
        )
        .await,
    )
    .await;
    assert!(audit.contains("EntityAlreadyExistsException"), "{audit}");
    assert!(!audit.contains("</span>Success</span>"), "{audit}");
}

#[tokio::test]
async fn with_an_https_public_url_the_cookie_is_host_prefixed_and_secure() {
    let app = crate::harness::spawn_app_with(
        crate::harness::TestDatabase::migrated().await,
        "https://ci.example.com/",
    )
    .await;
    let res = client()
        .post(app.url("/setup"))
        .header("Origin", "https://ci.example.com")
        .form(&[
            ("username", ADMIN),
            ("password", ADMIN_PASSWORD),
            ("password_confirm", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("__Host-sluice_session="), "{cookie}");
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(res.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn one_address_is_capped_across_user_names() {
    let app = admin_app().await;
    for i in 0..50 {
        let res = client()
            .post(app.url("/login"))
            .header("Origin", &app.address)
            .form(&[
                ("username", format!("guess{i}").as_str()),
                ("password", "wrong password here"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "attempt {i}");
    }
    let res = client()
        .post(app.url("/login"))
        .header("Origin", &app.address)
        .form(&[("username", ADMIN), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429, "the 51st attempt from the address waits");
}

#[tokio::test]
async fn the_client_address_comes_from_the_proxy_only_when_trusted() {
    // Behind the proxy (127.0.0.1), the entry it appended (the right-most, 10.0.0.1) is the
    // client; the left one was written by the client and proves nothing.
    for (trusted, expected) in [(false, "127.0.0.1"), (true, "10.0.0.1")] {
        let app = if trusted {
            crate::harness::spawn_app_behind_proxy().await
        } else {
            spawn_app().await
        };
        let res = app
            .client
            .post(app.url("/setup"))
            .header("Origin", &app.address)
            .header("X-Forwarded-For", "203.0.113.7, 10.0.0.1")
            .form(&[
                ("username", ADMIN),
                ("password", ADMIN_PASSWORD),
                ("password_confirm", ADMIN_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        let html = body(app.get("/admin/audit").await).await;
        assert!(
            html.contains(&format!("<td>{expected}</td>")),
            "trusted={trusted}: {html}"
        );
    }
}

#[tokio::test]
async fn users_see_and_end_their_own_sessions_and_admins_end_anyones() {
    let app = admin_app().await;
    create_user(&app, "sam", "").await;
    let laptop = app.sign_in("sam", PASSWORD).await;
    let phone = app.sign_in("sam", PASSWORD).await;
    let html = body(laptop.get(app.url("/account")).send().await.unwrap()).await;
    assert_eq!(
        html.matches("/revoke\"").count(),
        1,
        "one other session to end: {html}"
    );
    assert!(html.contains("This session"));
    let id = html
        .split("/account/sessions/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();
    let res = app
        .post_form(&laptop, &format!("/account/sessions/{id}/revoke"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        phone.get(app.url("/")).send().await.unwrap().status(),
        303,
        "the phone is signed out"
    );
    assert_eq!(laptop.get(app.url("/")).send().await.unwrap().status(), 200);

    let res = app
        .post_form(&app.client, "/admin/users/sam/sessions/end", &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        laptop.get(app.url("/")).send().await.unwrap().status(),
        303,
        "ended by the administrator"
    );
}

#[tokio::test]
async fn the_audit_log_exports_the_filtered_set_as_json_lines() {
    let app = admin_app().await;
    create_user(&app, "one", "").await;
    create_user(&app, "two", "").await;
    let res = app.get("/admin/audit/export?event=iam%3ACreateUser").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/x-ndjson; charset=utf-8"
    );
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("sluice-audit.jsonl")
    );
    let text = body(res).await;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The administrator's own creation at set-up, then the two users (newest first).
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0]["resourceArn"], "arn:sluice:iam:::user/two");
    assert!(lines.iter().all(|l| l["eventName"] == "iam:CreateUser"));
    assert!(!text.contains(PASSWORD));
}

#[tokio::test]
async fn the_audit_export_streams_every_event_page_after_page() {
    use sqlx::{Connection, Executor};
    let app = admin_app().await;
    // 2,500 events (two and a half pages of the export), written behind the application's back:
    // the export reads what is stored, it does not verify the chain.
    let mut conn = sqlx::PgConnection::connect_with(&app.db.options)
        .await
        .unwrap();
    conn.execute(
        "INSERT INTO audit_events (event_id, event_time, event_name, request_parameters_text, outcome, chain_version, hash)
         SELECT gen_random_uuid(), now(), 'iam:CreateGroup', '{}', 'Success', 2, '\\x00'
         FROM generate_series(1, 2500)",
    )
    .await
    .unwrap();
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let res = app.get("/admin/audit/export").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("content-length").is_none(),
        "streamed, not buffered"
    );
    let text = body(res).await;
    let seqs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["eventId"].clone())
        .collect();
    assert_eq!(seqs.len() as i64, total);
    let unique: std::collections::HashSet<String> = seqs.iter().map(|v| v.to_string()).collect();
    assert_eq!(unique.len(), seqs.len(), "no event twice across pages");
}
