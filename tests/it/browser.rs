//! Console behaviour in a real browser (Debian's chromium, driven through chromedriver).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use thirtyfour::prelude::*;

use crate::harness::{ADMIN, ADMIN_PASSWORD, spawn_app};

/// A chromedriver process on a free port, stopped on drop.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver_path())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed (apt-get install chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, url }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver_path() -> PathBuf {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("chromedriver"))
}

async fn browser(driver: &ChromeDriver, profile: &std::path::Path, width: u32) -> WebDriver {
    let mut caps = DesiredCapabilities::chrome();
    if std::path::Path::new("/usr/bin/chromium").exists() {
        caps.set_binary("/usr/bin/chromium").unwrap();
    }
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        &format!("--window-size={width},900"),
        &format!("--user-data-dir={}", profile.display()),
    ] {
        caps.add_arg(arg).unwrap();
    }
    caps.set("goog:loggingPrefs", serde_json::json!({"browser": "ALL"}))
        .unwrap();
    WebDriver::new(&driver.url, caps)
        .await
        .expect("start chromium")
}

fn screenshot_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test]
async fn the_console_loads_styled_and_without_console_errors() {
    let app = spawn_app().await;
    let driver = ChromeDriver::start();
    let mut first = true;
    for (width, scheme, name) in [
        (1440, "light", "status-1440.png"),
        (390, "light", "status-390.png"),
        (1440, "dark", "status-1440-dark.png"),
    ] {
        let profile = tempfile::tempdir().unwrap();
        let browser = browser(&driver, profile.path(), width).await;
        // Headless windows have a minimum width; emulate the viewport exactly instead.
        browser
            .cdp()
            .emulation()
            .set_device_metrics_override(width, 900, 1.0, width < 600)
            .await
            .unwrap();
        browser
            .cdp()
            .send_raw(
                "Emulation.setEmulatedMedia",
                serde_json::json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
            )
            .await
            .unwrap();
        browser.goto(app.url("/")).await.unwrap();
        if first {
            // A fresh Sluice sends the first visitor to set-up.
            assert!(browser.current_url().await.unwrap().path() == "/setup");
            fill(&browser, "#username", ADMIN).await;
            fill(&browser, "#password", ADMIN_PASSWORD).await;
            fill(&browser, "#password_confirm", ADMIN_PASSWORD).await;
            first = false;
        } else {
            assert!(browser.current_url().await.unwrap().path() == "/login");
            fill(&browser, "#username", ADMIN).await;
            fill(&browser, "#password", ADMIN_PASSWORD).await;
        }
        browser
            .find(By::Css("button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for_path(&browser, "/").await;
        let inner_width: i64 = browser
            .execute("return window.innerWidth;", vec![])
            .await
            .unwrap()
            .convert()
            .unwrap();
        assert_eq!(inner_width, i64::from(width));
        assert_eq!(browser.title().await.unwrap(), "Pipelines · Sluice");
        // The style checks below use the server status page's badges.
        browser.goto(app.url("/status")).await.unwrap();
        assert_eq!(browser.title().await.unwrap(), "Server status · Sluice");

        // The layout is there and the stylesheet applied.
        let header = browser.find(By::Css("header.site-header")).await.unwrap();
        assert!(header.text().await.unwrap().contains("Sluice"));
        let computed = browser
            .execute(
                "const h = getComputedStyle(document.querySelector('.site-header'));\
                 const s = getComputedStyle(document.querySelector('.status-succeeded'));\
                 return [h.backgroundColor, h.display, s.borderRadius, \
                         document.documentElement.scrollWidth <= window.innerWidth, \
                         typeof window.htmx, getComputedStyle(document.body).backgroundColor];",
                vec![],
            )
            .await
            .unwrap();
        let values: Vec<serde_json::Value> = computed.convert().unwrap();
        assert_ne!(
            values[0], "rgba(0, 0, 0, 0)",
            "header background from app.css"
        );
        assert_eq!(values[1], "flex");
        assert_eq!(values[2], "999px");
        assert_eq!(values[3], true, "no horizontal scrolling at {width} px");
        assert_eq!(values[4], "object", "htmx loaded");
        let expected_background = match scheme {
            "dark" => "rgb(15, 27, 42)",
            _ => "rgb(242, 243, 243)",
        };
        assert_eq!(values[5], expected_background, "{scheme} colour scheme");
        let ready = browser.find(By::Css(".status-succeeded")).await.unwrap();
        assert_eq!(
            ready.text().await.unwrap().trim(),
            "Ready",
            "status has text, not colour alone"
        );

        // Keyboard focus is visible.
        browser
            .execute("document.querySelector('.brand').focus();", vec![])
            .await
            .unwrap();
        let outline = browser
            .execute(
                "return getComputedStyle(document.activeElement).outlineStyle;",
                vec![],
            )
            .await
            .unwrap();
        let outline: String = outline.convert().unwrap();
        assert_ne!(outline, "none", "focus outline");

        // Nothing went wrong in the browser: a CSP violation or a failed load would show here.
        let errors: Vec<String> = browser
            .browser_log()
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.level == "SEVERE" || e.level == "WARNING")
            .map(|e| e.message)
            .collect();
        assert!(errors.is_empty(), "browser console: {errors:#?}");

        browser.screenshot(&screenshot_path(name)).await.unwrap();
        browser.quit().await.unwrap();
    }
}

/// Whether the page is no wider than the window (nothing scrolls sideways).
async fn fits_viewport(browser: &WebDriver) -> bool {
    browser
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            vec![],
        )
        .await
        .unwrap()
        .convert()
        .unwrap()
}

async fn fill(browser: &WebDriver, css: &str, text: &str) {
    let input = browser.find(By::Css(css)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

async fn wait_for_path(browser: &WebDriver, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = browser.current_url().await.unwrap();
        if url.path() == path {
            return;
        }
        assert!(Instant::now() < deadline, "still at {url}, expected {path}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The identity walk-through: set-up, create a read-only user, sign in as them, and find the
/// Admin section gone and its pages refused.
#[tokio::test]
async fn a_read_only_user_sees_no_admin_section() {
    let app = spawn_app().await;
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, profile.path(), 1280).await;

    browser.goto(app.url("/")).await.unwrap();
    wait_for_path(&browser, "/setup").await;
    fill(&browser, "#username", ADMIN).await;
    fill(&browser, "#password", ADMIN_PASSWORD).await;
    fill(&browser, "#password_confirm", ADMIN_PASSWORD).await;
    browser
        .find(By::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&browser, "/").await;
    assert!(
        browser
            .find(By::Css(r#".site-nav a[href="/admin"]"#))
            .await
            .is_ok(),
        "the administrator sees Admin"
    );

    browser.goto(app.url("/admin/users")).await.unwrap();
    fill(&browser, "#user_name", "viewer").await;
    fill(&browser, "#password", "a long and unusual passphrase 42").await;
    browser
        .find(By::Css(
            "#policy option[value=AWSCodePipeline_ReadOnlyAccess]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .find(By::Css("form[action='/admin/users'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&browser, "/admin/users/viewer").await;
    let policies = browser.find(By::Css("#policies-heading")).await.unwrap();
    assert!(policies.is_displayed().await.unwrap());
    assert!(
        browser
            .source()
            .await
            .unwrap()
            .contains("AWSCodePipeline_ReadOnlyAccess")
    );
    browser
        .screenshot(&screenshot_path("admin-user.png"))
        .await
        .unwrap();

    // Sign out through the header's button, then sign in as the new user.
    browser
        .find(By::Css(".user-menu button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&browser, "/login").await;
    fill(&browser, "#username", "viewer").await;
    fill(&browser, "#password", "a long and unusual passphrase 42").await;
    browser
        .find(By::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&browser, "/").await;
    let nav = browser
        .find(By::Css(".site-nav"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !nav.contains("Admin"),
        "no Admin link for a read-only user: {nav}"
    );
    assert!(
        browser
            .find(By::Css(r#".site-nav a[href="/admin"]"#))
            .await
            .is_err()
    );

    browser.goto(app.url("/admin/users")).await.unwrap();
    let heading = browser
        .find(By::Css("#error-heading"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(heading, "Access denied");
    let detail = browser
        .find(By::Css(".error-detail"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(detail, "You are not allowed to perform iam:ListUsers on *");
    let user_menu = browser
        .find(By::Css(".user-menu"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        user_menu.contains("viewer"),
        "the error page keeps the signed-in layout"
    );
    let user_menu = browser
        .find(By::Css(".user-menu"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        user_menu.contains("viewer"),
        "the error page keeps the signed-in layout"
    );
    browser
        .screenshot(&screenshot_path("read-only-user-403.png"))
        .await
        .unwrap();

    let errors: Vec<String> = browser
        .browser_log()
        .await
        .unwrap()
        .into_iter()
        // The 403 itself is logged by the browser as a failed resource load; nothing else may be.
        .filter(|e| {
            (e.level == "SEVERE" || e.level == "WARNING") && !e.message.contains("403 (Forbidden)")
        })
        .map(|e| e.message)
        .collect();
    assert!(errors.is_empty(), "browser console: {errors:#?}");
    browser.quit().await.unwrap();
}

/// The wizard end to end in a browser (a URL per step: Back, Forward and Reload work), landing on the view page; then the JSON
/// editor's problem list; screenshots of the wizard and the view at desktop and phone widths.
#[tokio::test]
async fn the_wizard_creates_a_pipeline_and_the_view_shows_it() {
    let app = spawn_app().await;
    app.setup_admin().await;
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, profile.path(), 1280).await;
    browser.goto(app.url("/login")).await.unwrap();
    fill(&browser, "#username", ADMIN).await;
    fill(&browser, "#password", ADMIN_PASSWORD).await;
    browser
        .find(By::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&browser, "/").await;

    browser
        .find(By::LinkText("Create pipeline"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&browser, "/pipelines/new/settings").await;
    fill(&browser, "#name", "web-app").await;
    browser
        .screenshot(&screenshot_path("wizard-settings.png"))
        .await
        .unwrap();
    next(&browser, "Source stage").await;
    wait_for_path(&browser, "/pipelines/new/source").await;
    // Only the chosen provider's fields show.
    assert!(!displayed(&browser, "#upload_bucket").await);
    click(&browser, "#source_provider-Upload").await;
    assert!(displayed(&browser, "#upload_bucket").await && !displayed(&browser, "#git_url").await);
    click(&browser, "#source_provider-Git").await;
    fill(
        &browser,
        "#git_url",
        "https://git.example.com/acme/web-app.git",
    )
    .await;
    // Enter in a field goes forward, as Next does (not Back, which the row shows first).
    browser
        .find(By::Css("#git_url"))
        .await
        .unwrap()
        .send_keys("\u{E007}")
        .await
        .unwrap();
    wait_for_heading(&browser, "Build stage").await;
    wait_for_path(&browser, "/pipelines/new/build").await;
    // The browser's Back and Forward go between the steps' pages; Reload keeps the step.
    browser.back().await.unwrap();
    wait_for_heading(&browser, "Source stage").await;
    assert_eq!(
        browser
            .find(By::Css("#git_url"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("https://git.example.com/acme/web-app.git")
    );
    browser.forward().await.unwrap();
    wait_for_heading(&browser, "Build stage").await;
    browser.refresh().await.unwrap();
    wait_for_heading(&browser, "Build stage").await;
    // A starter buildspec is offered inline; a file in the source is the other choice.
    let starter = browser
        .find(By::Css("#build_spec"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(starter.starts_with("version: 0.2"), "{starter}");
    assert!(!displayed(&browser, "#build_spec_path").await);
    click(&browser, "#build_spec_from-path").await;
    fill(&browser, "#build_spec_path", "buildspec.yml").await;
    next(&browser, "Deploy stage").await;

    // Skipping both build and deploy is refused with a clear message.
    browser
        .find(By::Css("button[value=back]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_heading(&browser, "Build stage").await;
    browser
        .find(By::Css("input[name=build_provider][value=skip]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    next(&browser, "Deploy stage").await;
    browser
        .find(By::Css("input[name=deploy_provider][value=skip]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .find(By::Css("button[value=next]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let refusal = wait_for(&browser, "#deploy_provider-error")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        refusal.contains("skipping both leaves nothing to run"),
        "{refusal}"
    );

    // Back to a Command build, deploy skipped: Git source + Command build.
    browser
        .find(By::Css("button[value=back]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_heading(&browser, "Build stage").await;
    browser
        .find(By::Css("input[name=build_provider][value=Command]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    next(&browser, "Deploy stage").await;
    browser
        .find(By::Css("input[name=deploy_provider][value=skip]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    next(&browser, "Review").await;
    browser
        .screenshot(&screenshot_path("wizard-review.png"))
        .await
        .unwrap();
    browser
        .find(By::Css("button[value=create]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&browser, "/pipelines/web-app").await;

    // Read again if the live stream swaps a stage in between.
    let stages: Vec<String> = loop {
        let mut names = Vec::new();
        for h in browser.find_all(By::Css(".stage-header h2")).await.unwrap() {
            match h.text().await {
                Ok(name) => names.push(name),
                Err(_) => break,
            }
        }
        if names.len() == 2 {
            break names;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(stages, ["Source", "Build"]);
    // Hovering an artifact highlights its producer and consumer. The first execution's live
    // updates may swap the stage holding the chip in between (a stale element, or a fresh one
    // not yet focused): focus it again until a swap has not intervened.
    let mut related = 0;
    for _ in 0..50 {
        let chip = browser
            .find(By::Css(".artifact-out[data-artifact=SourceArtifact]"))
            .await
            .unwrap();
        if chip.focus().await.is_ok() {
            related = browser
                .find_all(By::Css(".artifact-related"))
                .await
                .unwrap()
                .len();
            if related == 2 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(related, 2, "the output chip and the build's input chip");
    browser
        .screenshot(&screenshot_path("pipeline-view-1280.png"))
        .await
        .unwrap();
    browser
        .cdp()
        .emulation()
        .set_device_metrics_override(390, 900, 1.0, true)
        .await
        .unwrap();
    browser.refresh().await.unwrap();
    let fits = fits_viewport(&browser).await;
    assert!(fits, "the view page fits 390 px");
    browser
        .screenshot(&screenshot_path("pipeline-view-390.png"))
        .await
        .unwrap();
    browser
        .cdp()
        .emulation()
        .set_device_metrics_override(1280, 900, 1.0, false)
        .await
        .unwrap();

    // The form editor adds a stage with an action and saves a new version.
    browser
        .goto(app.url("/pipelines/web-app/edit"))
        .await
        .unwrap();
    fill(&browser, "#new-stage", "Staging").await;
    click(&browser, "button[value=add_stage]").await;
    wait_for_text(&browser, ".notice-success", "Stage Staging added").await;
    click(
        &browser,
        "#add-type-2 option[value='Deploy/Sluice/Directory/1']",
    )
    .await;
    fill(&browser, "#add-name-2", "Install").await;
    click(&browser, "li.stage:nth-child(3) button[value=add_action]").await;
    wait_for_text(&browser, ".notice-success", "Action Install added").await;
    click(&browser, "li.stage:nth-child(3) details summary").await;
    fill(&browser, "#a-2-0-in", "BuildArtifact").await;
    fill(&browser, "#a-2-0-c-TargetDirectory", "/srv/web-app").await;
    click(&browser, "li.stage:nth-child(3) button[value=edit_action]").await;
    wait_for_text(&browser, ".notice-success", "Action Install updated").await;
    browser
        .screenshot(&screenshot_path("pipeline-editor.png"))
        .await
        .unwrap();
    // Leaving with unsaved changes asks first. (ChromeDriver answers the browser's own dialog
    // itself, so the test asks the page's handler, as the browser does before it shows one.)
    assert!(asks_before_leaving(&browser).await);
    click(&browser, "button[value=save]").await;
    wait_for_path(&browser, "/pipelines/web-app").await;
    wait_for_text(&browser, ".page-lede", "Version 2").await;

    // Discard drops applied edits without asking; the editor shows the stored version again.
    browser
        .goto(app.url("/pipelines/web-app/edit"))
        .await
        .unwrap();
    fill(&browser, "#new-stage", "Scratch").await;
    click(&browser, "#new-stage-position option[value='0']").await;
    click(&browser, "button[value=add_stage]").await;
    wait_for_text(&browser, ".notice-success", "Stage Scratch added").await;
    assert_eq!(
        browser
            .find(By::Css("#stage-name-0"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("Scratch"),
        "added at the start"
    );
    assert!(asks_before_leaving(&browser).await);
    click(&browser, "[data-discard]").await;
    wait_for_text(&browser, ".save-bar", "No changes yet.").await;
    assert!(!asks_before_leaving(&browser).await, "nothing to lose now");
    // Typing that was not applied yet counts as unsaved too.
    fill(&browser, "#new-stage", "Half-typed").await;
    assert!(asks_before_leaving(&browser).await);
    assert_eq!(
        browser
            .find_all(By::Css(".editor .stage-panel"))
            .await
            .unwrap()
            .len(),
        3,
        "the stored version's stages"
    );
    assert_eq!(
        browser
            .find_all(By::Css(".stage-panel"))
            .await
            .unwrap()
            .len(),
        3
    );

    // The JSON editor shows every problem with its path.
    browser
        .goto(app.url("/pipelines/web-app/edit/json"))
        .await
        .unwrap();
    let editor = browser.find(By::Css("#document")).await.unwrap();
    let text = editor.prop("value").await.unwrap().unwrap_or_default();
    let broken = text.replace("\"BuildSpecPath\"", "\"Colour\"");
    assert_ne!(broken, text);
    browser
        .execute(
            "document.getElementById('document').value = arguments[0];",
            vec![serde_json::json!(broken)],
        )
        .await
        .unwrap();
    browser
        .find(By::Css("form button[type=submit].button-primary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let problems = wait_for(&browser, "#document-errors")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        problems.contains("stages[1].actions[0].configuration.Colour"),
        "{problems}"
    );

    let errors: Vec<String> = browser
        .browser_log()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            (e.level == "SEVERE" || e.level == "WARNING")
                && !e.message.contains("400 (Bad Request)")
        })
        .map(|e| e.message)
        .collect();
    assert!(errors.is_empty(), "browser console: {errors:#?}");
    browser.quit().await.unwrap();
}

/// Whether the page would ask before being left: its `beforeunload` handler cancels the event.
async fn asks_before_leaving(browser: &WebDriver) -> bool {
    browser
        .execute(
            "var e = new Event('beforeunload', {cancelable: true}); \
             window.dispatchEvent(e); return e.defaultPrevented;",
            Vec::new(),
        )
        .await
        .unwrap()
        .json()
        == &serde_json::json!(true)
}

/// Whether the element shows (CSS can hide the fields of a provider that is not chosen).
async fn displayed(browser: &WebDriver, css: &str) -> bool {
    browser
        .find(By::Css(css))
        .await
        .unwrap()
        .is_displayed()
        .await
        .unwrap()
}

async fn next(browser: &WebDriver, heading: &str) {
    browser
        .find(By::Css("button[value=next]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_heading(browser, heading).await;
}

/// Wait until the wizard shows the step `heading`.
async fn wait_for_heading(browser: &WebDriver, heading: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(h) = browser.find(By::Css(".wizard h2")).await
            && h.text().await.unwrap_or_default() == heading
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the wizard never showed {heading}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for an element that an htmx swap or a navigation will bring.
async fn wait_for(browser: &WebDriver, css: &str) -> WebElement {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(found) = browser.find(By::Css(css)).await {
            return found;
        }
        assert!(Instant::now() < deadline, "{css} never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks an element, finding it again if the live stream replaced it in between.
async fn click(browser: &WebDriver, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match wait_for(browser, css).await.click().await {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "cannot click {css}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the element shows `text` (after an htmx swap).
async fn wait_for_text(browser: &WebDriver, css: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(found) = browser.find(By::Css(css)).await
            && found.text().await.unwrap_or_default().contains(text)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{css} never showed {text:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reloads until the page's heading area shows `text`.
async fn reload_until(browser: &WebDriver, css: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(found) = browser.find(By::Css(css)).await
            && found.text().await.unwrap_or_default().contains(text)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{css} never showed {text:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        browser.refresh().await.unwrap();
    }
}

#[tokio::test]
async fn release_change_runs_the_pipeline_and_its_log_grows_while_it_runs() {
    let app = crate::harness::spawn_app_with_workers(2).await;
    app.setup_admin().await;
    let t = app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = crate::executions::repository(repo.path());
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo before the pause\n      - sleep 2\n      - echo after the pause\n";
    let decl = serde_json::json!({"name": "shop", "stages": [
        crate::executions::source_stage(&path),
        {"name": "Build", "actions": [{"name": "Compile",
            "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
            "configuration": {"BuildSpec": spec}, "inputArtifacts": [{"name": "Src"}]}]}
    ]});
    crate::harness::api_ok(
        &app,
        &t,
        "CreatePipeline",
        serde_json::json!({"pipeline": decl}),
    )
    .await;

    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, profile.path(), 1280).await;
    browser.goto(app.url("/login")).await.unwrap();
    fill(&browser, "#username", ADMIN).await;
    fill(&browser, "#password", ADMIN_PASSWORD).await;
    click(&browser, "button[type=submit]").await;
    wait_for_path(&browser, "/").await;

    // The first run (CreatePipeline's) ends; then Release change starts another.
    browser.goto(app.url("/pipelines/shop")).await.unwrap();
    reload_until(&browser, ".stage:last-child .stage-header", "Succeeded").await;
    click(&browser, "form[action='/pipelines/shop/release'] button").await;
    wait_for_text(&browser, ".notice-success", "The execution started.").await;

    // The build's row appears on the live execution page; its log, opened while it runs,
    // grows without a reload.
    let log_link = loop {
        if let Ok(link) = browser
            .find(By::XPath("//tr[td[text()='Compile']]//a[text()='Log']"))
            .await
            // The stream may swap the table between finding the link and reading it.
            && let Ok(Some(href)) = link.attr("href").await
        {
            break href;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    browser.goto(app.url(&log_link)).await.unwrap();
    wait_for_text(&browser, ".log", "before the pause").await;
    let url_before = browser.current_url().await.unwrap();
    wait_for_text(&browser, ".log", "after the pause").await;
    assert_eq!(
        browser.current_url().await.unwrap(),
        url_before,
        "the lines arrived in place"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while browser.find(By::Css(".log-more")).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the log keeps polling after the build ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_text(&browser, "#log-status", "Succeeded").await;
    browser
        .screenshot(&screenshot_path("action-log-1280.png"))
        .await
        .unwrap();

    // The view shows the second execution's success on every stage and action.
    browser.goto(app.url("/pipelines/shop")).await.unwrap();
    reload_until(&browser, ".stage:last-child .stage-header", "Succeeded").await;
    let succeeded = browser
        .find_all(By::Css(".status-succeeded"))
        .await
        .unwrap()
        .len();
    assert_eq!(succeeded, 4, "two stages and two actions");
    browser
        .screenshot(&screenshot_path("pipeline-run-1280.png"))
        .await
        .unwrap();
    browser
        .goto(app.url("/pipelines/shop/executions"))
        .await
        .unwrap();
    let rows = browser.find_all(By::Css("tbody tr")).await.unwrap().len();
    assert_eq!(rows, 2);
    browser
        .screenshot(&screenshot_path("history-1280.png"))
        .await
        .unwrap();
    let execution_page = browser
        .find(By::Css("tbody tr td a.mono"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    browser.goto(app.url(&execution_page)).await.unwrap();
    browser
        .screenshot(&screenshot_path("execution-1280.png"))
        .await
        .unwrap();
    for (page, shot) in [
        ("/pipelines/shop", "pipeline-run-390.png"),
        ("/pipelines/shop/executions", "history-390.png"),
        (execution_page.as_str(), "execution-390.png"),
        (log_link.as_str(), "action-log-390.png"),
    ] {
        browser
            .cdp()
            .emulation()
            .set_device_metrics_override(390, 900, 1.0, true)
            .await
            .unwrap();
        browser.goto(app.url(page)).await.unwrap();
        let fits = fits_viewport(&browser).await;
        assert!(fits, "{page} fits 390 px");
        browser.screenshot(&screenshot_path(shot)).await.unwrap();
    }
    let errors: Vec<String> = browser
        .browser_log()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.level == "SEVERE" || e.level == "WARNING")
        .map(|e| e.message)
        .collect();
    assert!(errors.is_empty(), "browser console: {errors:#?}");
    browser.quit().await.unwrap();
}

/// Approvals: a user allowed on one gate finds it in the inbox (and its count in the
/// navigation), reviews it in the dialog over the pipeline view, approves with a comment, and
/// the execution goes on to Succeeded. Screenshots of the inbox and the dialog at desktop and
/// phone widths.
#[tokio::test]
async fn a_gatekeeper_approves_from_the_inbox_and_the_execution_succeeds() {
    use crate::approvals::{approval_pipeline, gate};
    use serde_json::json;
    let app = crate::harness::spawn_app_with_workers(2).await;
    app.setup_admin().await;
    let t = app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = crate::executions::repository(repo.path());
    let mut decl = approval_pipeline(
        "release",
        &path,
        gate(
            "Gate",
            json!({"CustomData": "Check the release notes for #{SourceVariables.CommitId}.",
                   "ExternalEntityLink": "https://example.com/notes",
                   "RequireComment": "true"}),
        ),
    );
    decl["stages"][1]["actions"]
        .as_array_mut()
        .unwrap()
        .push(gate("Security", json!({})));
    crate::harness::api_ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    crate::harness::user_with_policy(
        &app,
        &t,
        "gatekeeper",
        Some(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["codepipeline:ListPipelines"], "Resource": "*"},
            {"Effect": "Allow", "Action": ["codepipeline:Get*", "codepipeline:List*"], "Resource": "arn:sluice:codepipeline:::release"},
            {"Effect": "Allow", "Action": "codepipeline:PutApprovalResult", "Resource": "arn:sluice:codepipeline:::release/Approve/Gate"}]})),
    )
    .await;
    crate::approvals::waiting(&app, &t, "release", "Approve", "Gate").await;

    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, profile.path(), 1280).await;
    browser.goto(app.url("/login")).await.unwrap();
    fill(&browser, "#username", "gatekeeper").await;
    fill(&browser, "#password", crate::harness::USER_PASSWORD).await;
    click(&browser, "button[type=submit]").await;
    wait_for_path(&browser, "/").await;
    // The navigation counts the one approval the gatekeeper may answer.
    wait_for_text(&browser, ".site-nav .nav-count", "1").await;

    // Phone width first (the approval must still wait for the dialog's screenshot).
    browser
        .cdp()
        .emulation()
        .set_device_metrics_override(390, 900, 1.0, true)
        .await
        .unwrap();
    for (page, shot) in [("/approvals", "approvals-inbox-390.png")] {
        browser.goto(app.url(page)).await.unwrap();
        wait_for(&browser, ".inbox a.button").await;
        let fits = fits_viewport(&browser).await;
        assert!(fits, "{page} fits 390 px");
        browser.screenshot(&screenshot_path(shot)).await.unwrap();
    }
    browser.goto(app.url("/pipelines/release")).await.unwrap();
    click(&browser, ".action-review a").await;
    wait_for(&browser, "dialog.modal[open] textarea").await;
    browser
        .screenshot(&screenshot_path("approval-dialog-390.png"))
        .await
        .unwrap();
    // Closing the dialog needs no script of ours.
    click(&browser, "dialog.modal form[method=dialog] button").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while browser.find(By::Css("dialog.modal[open]")).await.is_ok() {
        assert!(Instant::now() < deadline, "the dialog never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    browser
        .cdp()
        .emulation()
        .set_device_metrics_override(1280, 900, 1.0, false)
        .await
        .unwrap();
    browser.goto(app.url("/approvals")).await.unwrap();
    let rows = browser.find_all(By::Css(".inbox tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1, "the gatekeeper's one gate, not Security");
    wait_for_text(&browser, ".inbox", "First commit").await;
    browser
        .screenshot(&screenshot_path("approvals-inbox-1280.png"))
        .await
        .unwrap();
    // Review from the inbox opens the review page; from the pipeline view, the dialog.
    click(&browser, ".inbox a.button").await;
    wait_for_text(&browser, ".review", "Check the release notes for").await;
    browser.goto(app.url("/pipelines/release")).await.unwrap();
    // No Review button on the gate the gatekeeper may not answer.
    let buttons = browser.find_all(By::Css(".action-review a")).await.unwrap();
    assert_eq!(buttons.len(), 1);
    click(&browser, ".action-review a").await;
    let comment = wait_for(&browser, "dialog.modal[open] textarea").await;
    browser
        .screenshot(&screenshot_path("approval-dialog-1280.png"))
        .await
        .unwrap();
    // Approving without the required comment: the browser itself refuses (required).
    comment
        .send_keys("Release notes read; ship it.")
        .await
        .unwrap();
    click(&browser, "dialog.modal button[value=Approved]").await;
    wait_for_text(&browser, ".notice-success", "Approved").await;
    reload_until(&browser, ".stage:nth-child(2) .stage-header", "In progress").await;
    // Security still waits for someone allowed: the administrator answers it through the API.
    let token =
        crate::approvals::waiting(&app, &t, "release", "Approve", "Security").await["token"]
            .as_str()
            .unwrap()
            .to_string();
    crate::harness::api_ok(
        &app,
        &t,
        "PutApprovalResult",
        json!({"pipelineName": "release", "stageName": "Approve", "actionName": "Security",
               "result": {"status": "Approved", "summary": "ok"}, "token": token}),
    )
    .await;
    reload_until(&browser, ".stage:last-child .stage-header", "Succeeded").await;
    wait_for_text(
        &browser,
        ".stage:nth-child(2)",
        "Release notes read; ship it.",
    )
    .await;
    browser
        .screenshot(&screenshot_path("approval-approved-1280.png"))
        .await
        .unwrap();
    let errors: Vec<String> = browser
        .browser_log()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.level == "SEVERE" || e.level == "WARNING")
        .map(|e| e.message)
        .collect();
    assert!(errors.is_empty(), "browser console: {errors:#?}");
    browser.quit().await.unwrap();
}

/// Long names wrap instead of widening the page: a pipeline with a 100-character name (the
/// longest allowed), its stages and action, at phone and wide desktop widths, on the pages that
/// show it and on the pages every user has.
#[tokio::test]
async fn no_console_page_scrolls_sideways_with_the_longest_names() {
    use serde_json::json;
    let app = spawn_app().await;
    app.setup_admin().await;
    let t = app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await;
    let name = format!("p{}", "a".repeat(99));
    let stage = format!("S{}", "b".repeat(99));
    let action = format!("A{}", "c".repeat(99));
    let decl = json!({"name": name, "stages": [
        {"name": "Source", "actions": [{"name": "Checkout",
            "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
            "configuration": {"RepositoryUrl": format!("https://git.example.com/{}.git", "r".repeat(200)), "Branch": "main"},
            "outputArtifacts": [{"name": "Src"}]}]},
        {"name": stage, "actions": [{"name": action,
            "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"},
            "configuration": {"CustomData": "x".repeat(300)}}]}
    ]});
    crate::harness::api_ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, profile.path(), 1440).await;
    browser.goto(app.url("/login")).await.unwrap();
    fill(&browser, "#username", ADMIN).await;
    fill(&browser, "#password", ADMIN_PASSWORD).await;
    click(&browser, "button[type=submit]").await;
    wait_for_path(&browser, "/").await;
    let pages = [
        "/".to_string(),
        format!("/pipelines/{name}"),
        format!("/pipelines/{name}/executions"),
        format!("/pipelines/{name}/versions"),
        format!("/pipelines/{name}/edit"),
        "/approvals".to_string(),
        "/account".to_string(),
        "/admin".to_string(),
        "/admin/users".to_string(),
        "/admin/audit".to_string(),
        "/admin/workers".to_string(),
        "/status".to_string(),
        "/pipelines/new/settings".to_string(),
        "/pipelines/new/build".to_string(),
        "/pipelines/new/review".to_string(),
    ];
    for width in [390, 1440] {
        browser
            .cdp()
            .emulation()
            .set_device_metrics_override(width, 900, 1.0, width < 500)
            .await
            .unwrap();
        for page in &pages {
            browser.goto(app.url(page)).await.unwrap();
            let fits = fits_viewport(&browser).await;
            if !fits {
                browser
                    .screenshot(&screenshot_path(&format!("too-wide-{width}.png")))
                    .await
                    .unwrap();
            }
            assert!(fits, "{page} fits {width} px");
        }
    }
    // At 1440 px the audit log's last columns stay on screen however long a resource is: its
    // table needs no sideways scrolling of its own.
    browser
        .cdp()
        .emulation()
        .set_device_metrics_override(1440, 900, 1.0, false)
        .await
        .unwrap();
    browser.goto(app.url("/admin/audit")).await.unwrap();
    let (table_fits, longest) = {
        let answer = browser
            .execute(
                "var wrap = document.querySelector('.audit-table').parentElement; \
                 var source = document.querySelector('.audit-table th:last-child').getBoundingClientRect(); \
                 var longest = Math.max.apply(null, Array.from(document.querySelectorAll('.audit-resource')).map(function (c) { return c.textContent.length; })); \
                 return [wrap.scrollWidth <= wrap.clientWidth && source.right <= window.innerWidth, longest];",
                Vec::new(),
            )
            .await
            .unwrap();
        let v = answer.json().clone();
        (v[0] == serde_json::json!(true), v[1].as_u64().unwrap_or(0))
    };
    assert!(
        longest >= 100,
        "a long resource is listed ({longest} characters)"
    );
    if !table_fits {
        browser
            .screenshot(&screenshot_path("audit-too-wide-1440.png"))
            .await
            .unwrap();
    }
    assert!(table_fits, "Outcome and Source stay on screen at 1440 px");
    browser.quit().await.unwrap();
}

/// A diff's line numbers of 100 and more stay on one line.
#[tokio::test]
async fn diff_line_numbers_stay_on_one_line() {
    use serde_json::json;
    let app = spawn_app().await;
    app.setup_admin().await;
    let t = app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await;
    let decl = |last_spec: &str| {
        let actions: Vec<_> = (0..12)
            .map(|i| json!({"name": format!("Build{i}"),
                "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
                "configuration": {"BuildSpec": if i == 11 { last_spec.to_string() } else { "version: 0.2\nphases:\n  build:\n    commands: [make]\n".to_string() }},
                "inputArtifacts": [{"name": "Src"}]}))
            .collect();
        json!({"name": "numbered", "stages": [
            crate::executions::source_stage("https://git.example.com/app.git"),
            {"name": "Build", "actions": actions}]})
    };
    crate::harness::api_ok(
        &app,
        &t,
        "CreatePipeline",
        json!({"pipeline": decl("version: 0.2\nphases:\n  build:\n    commands: [make]\n")}),
    )
    .await;
    let mut second = decl("version: 0.2\nphases:\n  build:\n    commands: [make test]\n");
    second["version"] = json!(1);
    crate::harness::api_ok(&app, &t, "UpdatePipeline", json!({"pipeline": second})).await;
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, profile.path(), 390).await;
    browser.goto(app.url("/login")).await.unwrap();
    fill(&browser, "#username", ADMIN).await;
    fill(&browser, "#password", ADMIN_PASSWORD).await;
    click(&browser, "button[type=submit]").await;
    wait_for_path(&browser, "/").await;
    browser
        .cdp()
        .emulation()
        .set_device_metrics_override(390, 900, 1.0, true)
        .await
        .unwrap();
    browser
        .goto(app.url("/pipelines/numbered/diff?from=1&to=2"))
        .await
        .unwrap();
    let wrapped: Vec<String> = browser
        .execute(
            "return [...document.querySelectorAll('.diff-num')].filter(td => {
                 const r = document.createRange(); r.selectNodeContents(td);
                 return td.textContent.trim().length >= 3 && r.getClientRects().length > 1;
             }).map(td => td.textContent.trim());",
            vec![],
        )
        .await
        .unwrap()
        .convert()
        .unwrap();
    let numbered: usize = browser
        .execute(
            "return [...document.querySelectorAll('.diff-num')].filter(td => td.textContent.trim().length >= 3).length;",
            vec![],
        )
        .await
        .unwrap()
        .convert()
        .unwrap();
    assert!(numbered > 0, "the diff shows lines numbered 100 or more");
    assert!(wrapped.is_empty(), "wrapped line numbers: {wrapped:?}");
    browser.quit().await.unwrap();
}

/// The live view: each stage turns from In progress to Succeeded in the open page, with no
/// reload (a marker set in the page survives), the execution page and history follow, and
/// after the server restarts the page reconnects by itself and goes on. Screenshots of the
/// view mid-run at desktop and phone widths.
#[tokio::test]
async fn the_pipeline_view_turns_each_stage_green_without_a_reload_and_reconnects() {
    let app = crate::harness::spawn_app_with_workers(2).await;
    app.setup_admin().await;
    let t = app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await;
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = crate::executions::repository(repo.path());
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo building\n      - sleep 3\n      - echo built\n";
    let decl = serde_json::json!({"name": "livewire", "stages": [
        crate::executions::source_stage(&path),
        {"name": "Build", "actions": [{"name": "Compile",
            "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
            "configuration": {"BuildSpec": spec}, "inputArtifacts": [{"name": "Src"}]}]}
    ]});
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, profile.path(), 1280).await;
    browser.goto(app.url("/login")).await.unwrap();
    fill(&browser, "#username", ADMIN).await;
    fill(&browser, "#password", ADMIN_PASSWORD).await;
    click(&browser, "button[type=submit]").await;
    wait_for_path(&browser, "/").await;

    // A second browser: a user who may see only another pipeline, watching it.
    let elsewhere = serde_json::json!({"name": "elsewhere", "stages": [
        crate::executions::source_stage(&path),
        {"name": "Hold", "actions": [{"name": "Wait",
            "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"}}]}
    ]});
    crate::harness::api_ok(
        &app,
        &t,
        "CreatePipeline",
        serde_json::json!({"pipeline": elsewhere}),
    )
    .await;
    crate::harness::user_with_policy(
        &app,
        &t,
        "onlooker",
        Some(serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["codepipeline:Get*", "codepipeline:List*"],
             "Resource": "arn:aws:codepipeline:*:*:elsewhere"},
            {"Effect": "Allow", "Action": "codepipeline:ListPipelines", "Resource": "*"}]})),
    )
    .await;
    let other_profile = tempfile::tempdir().unwrap();
    let onlooker = self::browser(&driver, other_profile.path(), 1280).await;
    onlooker.goto(app.url("/login")).await.unwrap();
    fill(&onlooker, "#username", "onlooker").await;
    fill(&onlooker, "#password", crate::harness::USER_PASSWORD).await;
    click(&onlooker, "button[type=submit]").await;
    wait_for_path(&onlooker, "/").await;
    onlooker
        .goto(app.url("/pipelines/elsewhere"))
        .await
        .unwrap();
    wait_for_text(&onlooker, "#live-status", "Live").await;
    onlooker
        .execute(
            "window.sluiceReceived = []; document.body.addEventListener('htmx:sseMessage', \
             function (e) { window.sluiceReceived.push(String(e.detail.data)); });",
            Vec::new(),
        )
        .await
        .unwrap();

    // The list is open when the pipeline is created; its first run is then watched in the view.
    crate::harness::api_ok(
        &app,
        &t,
        "CreatePipeline",
        serde_json::json!({"pipeline": decl}),
    )
    .await;
    browser.goto(app.url("/pipelines/livewire")).await.unwrap();
    wait_for_text(&browser, "#live-status", "Live").await;
    browser
        .execute("window.sluiceNoReload = true;", Vec::new())
        .await
        .unwrap();
    wait_for_text(&browser, "#stage-2 .stage-header", "In progress").await;
    browser
        .screenshot(&screenshot_path("live-view-1280.png"))
        .await
        .unwrap();
    wait_for_text(&browser, "#stage-2 .stage-header", "Succeeded").await;
    assert_eq!(
        browser
            .execute("return window.sluiceNoReload === true;", Vec::new())
            .await
            .unwrap()
            .json(),
        &serde_json::json!(true),
        "the page was never reloaded"
    );
    assert_eq!(
        browser
            .find_all(By::Css(".status-succeeded"))
            .await
            .unwrap()
            .len(),
        4,
        "two stages and two actions"
    );
    // The onlooker's stream carried nothing of it.
    let received = onlooker
        .execute("return window.sluiceReceived;", Vec::new())
        .await
        .unwrap()
        .json()
        .clone();
    let received: Vec<String> = serde_json::from_value(received).unwrap();
    assert!(
        received
            .iter()
            .all(|m| !m.contains("livewire") && !m.contains("Compile")),
        "{received:#?}"
    );
    // While a change to the pipeline they watch does reach them.
    crate::harness::api_ok(
        &app,
        &t,
        "StartPipelineExecution",
        serde_json::json!({"name": "elsewhere"}),
    )
    .await;
    wait_for_text(&onlooker, "#stage-2 .stage-header", "In progress").await;
    let received = onlooker
        .execute("return window.sluiceReceived.length;", Vec::new())
        .await
        .unwrap()
        .json()
        .clone();
    assert!(received.as_u64().unwrap_or(0) > 0, "the listener heard it");
    onlooker.quit().await.unwrap();

    // The server restarts; the page says it is reconnecting, then goes on live by itself.
    app.restart().await;
    wait_for_text(&browser, "#live-status", "Live").await;
    crate::harness::api_ok(
        &app,
        &t,
        "StartPipelineExecution",
        serde_json::json!({"name": "livewire"}),
    )
    .await;
    wait_for_text(&browser, "#stage-2 .stage-header", "In progress").await;
    wait_for_text(&browser, "#stage-2 .stage-header", "Succeeded").await;
    assert_eq!(
        browser
            .execute("return window.sluiceNoReload === true;", Vec::new())
            .await
            .unwrap()
            .json(),
        &serde_json::json!(true),
        "still the same page"
    );

    // A third run, watched on its execution page and in the history at phone width.
    browser
        .cdp()
        .emulation()
        .set_device_metrics_override(390, 900, 1.0, true)
        .await
        .unwrap();
    browser
        .goto(app.url("/pipelines/livewire/executions"))
        .await
        .unwrap();
    wait_for_text(&browser, "#live-status", "Live").await;
    let third = crate::harness::api_ok(
        &app,
        &t,
        "StartPipelineExecution",
        serde_json::json!({"name": "livewire"}),
    )
    .await["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    let row = format!("#execution-{third}");
    wait_for_text(&browser, &row, "In progress").await;
    assert_eq!(
        browser
            .find_all(By::Css("#history-rows tr"))
            .await
            .unwrap()
            .len(),
        3,
        "the new execution was added above the others"
    );
    browser
        .screenshot(&screenshot_path("live-history-390.png"))
        .await
        .unwrap();
    browser.goto(app.url("/pipelines/livewire")).await.unwrap();
    wait_for_text(&browser, "#live-status", "Live").await;
    browser
        .screenshot(&screenshot_path("live-view-390.png"))
        .await
        .unwrap();
    assert!(fits_viewport(&browser).await, "the live view fits 390 px");
    wait_for_text(&browser, "#stage-2 .stage-header", "Succeeded").await;
    // The execution's detail (its timeline) and a log, at phone width.
    browser
        .goto(app.url(&format!("/pipelines/livewire/executions/{third}")))
        .await
        .unwrap();
    wait_for(&browser, ".timeline").await;
    assert!(
        fits_viewport(&browser).await,
        "the execution page fits 390 px"
    );
    browser
        .screenshot(&screenshot_path("execution-390.png"))
        .await
        .unwrap();
    click(&browser, "a[href$='/log']").await;
    wait_for(&browser, "#log-lines").await;
    assert!(fits_viewport(&browser).await, "the log fits 390 px");
    browser
        .screenshot(&screenshot_path("action-log-390.png"))
        .await
        .unwrap();
    let errors: Vec<String> = browser
        .browser_log()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.level == "SEVERE")
        .map(|e| e.message)
        // While the server restarted, the stream's reconnection failed (logged by the browser
        // and by htmx's SSE extension): expected.
        .filter(|m| !m.contains("/live") && !m.contains("[object Event]"))
        .collect();
    assert!(errors.is_empty(), "browser console: {errors:#?}");
    browser.quit().await.unwrap();
}

/// A browser window `width` pixels wide (a phone's below 600), signed in as the administrator.
async fn signed_in_admin(
    driver: &ChromeDriver,
    profile: &std::path::Path,
    app: &crate::harness::TestApp,
    width: u32,
) -> WebDriver {
    let browser = browser(driver, profile, width).await;
    browser
        .cdp()
        .emulation()
        .set_device_metrics_override(width, 900, 1.0, width < 600)
        .await
        .unwrap();
    browser.goto(app.url("/login")).await.unwrap();
    fill(&browser, "#username", ADMIN).await;
    fill(&browser, "#password", ADMIN_PASSWORD).await;
    click(&browser, "button[type=submit]").await;
    wait_for_path(&browser, "/").await;
    browser
}

#[tokio::test]
async fn a_fleet_deploys_hosts_and_a_pipelines_triggers_read_well_on_a_desktop_and_a_phone() {
    use std::os::unix::fs::PermissionsExt;
    let app = crate::harness::spawn_app_with_workers(2).await;
    app.setup_admin().await;
    let t = app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await;
    let roots = tempfile::tempdir().unwrap();
    std::fs::set_permissions(roots.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut workers = Vec::new();
    for i in 1..=2 {
        let root = roots.path().join(format!("host-{i}")).display().to_string();
        workers.push(crate::workers::worker_with(
            &app,
            1,
            30,
            &["--labels", "web", "--deploy-root", &root],
        ));
    }
    let mut c = <sqlx::PgConnection as sqlx::Connection>::connect_with(&app.db.options)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM worker_pools WHERE 'web' = ANY (labels) AND stopped_at IS NULL",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        if n == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the workers never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = crate::executions::repository(repo.path());
    let decl = serde_json::json!({"name": "fleet", "stages": [
        crate::executions::source_stage(&path),
        {"name": "Deploy", "actions": [{"name": "ToWeb",
            "actionTypeId": {"category": "Deploy", "owner": "Sluice", "provider": "Directory", "version": "1"},
            "configuration": {"TargetDirectory": "/srv/site", "DeploymentGroup": "web", "DeploymentConfig": "OneAtATime"},
            "inputArtifacts": [{"name": "Src"}]}]}
    ]});
    crate::harness::api_ok(
        &app,
        &t,
        "CreatePipeline",
        serde_json::json!({"pipeline": decl}),
    )
    .await;
    let execution = crate::executions::first_execution(&app, &t, "fleet").await;
    let end = crate::executions::wait_for_end(&app, &t, "fleet", &execution).await;
    assert_eq!(end["status"], "Succeeded", "{end}");
    let attempt: uuid::Uuid = sqlx::query_scalar(
        "SELECT id FROM action_executions WHERE execution_id = $1::uuid AND stage_index = 1",
    )
    .bind(&execution)
    .fetch_one(&mut c)
    .await
    .unwrap();

    let driver = ChromeDriver::start();
    for width in [1280u32, 390] {
        let profile = tempfile::tempdir().unwrap();
        let browser = signed_in_admin(&driver, profile.path(), &app, width).await;

        // The deploy's page: a row per host with its state, and each host's log behind a click.
        browser
            .goto(app.url(&format!("/pipelines/fleet/actions/{attempt}/log")))
            .await
            .unwrap();
        let rows = browser
            .find_all(By::Css("table.deploy-hosts tbody tr"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        for row in &rows {
            assert!(row.text().await.unwrap().contains("Deployed"));
        }
        let first_log = browser
            .find(By::Css("details.host-log ol.log"))
            .await
            .unwrap();
        assert!(!first_log.is_displayed().await.unwrap(), "closed at first");
        click(&browser, "details.host-log summary").await;
        assert!(first_log.is_displayed().await.unwrap());
        assert!(
            first_log
                .text()
                .await
                .unwrap()
                .contains("[Sluice] deploying on")
        );
        assert!(fits_viewport(&browser).await, "the hosts fit at {width}");
        browser
            .screenshot(&screenshot_path(&format!("deploy-hosts-{width}.png")))
            .await
            .unwrap();

        // The triggers page: the hook's URL, a secret made with one press, no sideways scroll.
        browser
            .goto(app.url("/pipelines/fleet/triggers"))
            .await
            .unwrap();
        if browser.find(By::Css("code.hook-secret")).await.is_err() {
            click(
                &browser,
                "form[action='/pipelines/fleet/triggers/secret'] button",
            )
            .await;
            wait_for(&browser, "code.hook-secret").await;
        }
        let url = browser
            .find(By::Css("code.hook-url"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(url.ends_with("/hooks/fleet/Checkout"), "{url}");
        assert!(fits_viewport(&browser).await, "the triggers fit at {width}");
        browser
            .screenshot(&screenshot_path(&format!("triggers-{width}.png")))
            .await
            .unwrap();
        browser.quit().await.unwrap();
    }
    drop(workers);
}

#[tokio::test]
async fn a_file_dropped_into_a_bucket_uploads_with_its_progress_and_starts_its_pipeline() {
    let app = crate::harness::spawn_app_with_workers(2).await;
    app.setup_admin().await;
    let t = app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await;
    crate::harness::api_ok(
        &app,
        &t,
        "CreateBucket",
        serde_json::json!({"bucketName": "drops"}),
    )
    .await;
    let decl = serde_json::json!({"name": "from-drops", "stages": [
        {"name": "Source", "actions": [{"name": "Drop",
            "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Upload", "version": "1"},
            "configuration": {"Bucket": "drops", "ObjectKey": "site.zip"},
            "outputArtifacts": [{"name": "Site"}]}]},
        {"name": "Build", "actions": [{"name": "Show",
            "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
            "configuration": {"BuildSpec": "version: 0.2\nphases:\n  build:\n    commands:\n      - cat app.txt\n"},
            "inputArtifacts": [{"name": "Site"}]}]}]});
    crate::harness::api_ok(
        &app,
        &t,
        "CreatePipeline",
        serde_json::json!({"pipeline": decl}),
    )
    .await;

    // A zip of a few megabytes, so that the progress has steps to show.
    let dir = tempfile::tempdir().unwrap();
    let content = tempfile::tempdir().unwrap();
    let noise: Vec<u8> = (0..6_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(content.path().join("noise.bin"), &noise).unwrap();
    std::fs::write(content.path().join("app.txt"), "dropped in the browser").unwrap();
    let zip_path = dir.path().join("site.zip");
    let mut zip = std::fs::File::create(&zip_path).unwrap();
    sluice::artifacts::archive::zip_directory(content.path(), &mut zip, 1 << 30).unwrap();
    drop(zip);

    let driver = ChromeDriver::start();
    for width in [1280u32, 390] {
        let profile = tempfile::tempdir().unwrap();
        let browser = signed_in_admin(&driver, profile.path(), &app, width).await;
        browser.goto(app.url("/buckets/drops")).await.unwrap();
        assert!(
            fits_viewport(&browser).await,
            "the bucket's page fits at {width}"
        );
        if width != 1280 {
            browser.quit().await.unwrap();
            continue;
        }
        // Record every progress value the page shows while the file goes up.
        browser
            .execute(
                "var keep = function (v) { var seen = JSON.parse(sessionStorage.getItem('seen') || '[]'); seen.push(v); sessionStorage.setItem('seen', JSON.stringify(seen)); }; \
                 var p = document.querySelector('[data-upload-progress]'); new MutationObserver(function () { keep(Number(p.value)); }).observe(p, {attributes: true}); \
                 var s = document.querySelector('[data-upload-status]'); new MutationObserver(function () { keep(s.textContent); }).observe(s, {childList: true, characterData: true, subtree: true});",
                vec![],
            )
            .await
            .unwrap();
        let input = browser.find(By::Css("#u-file")).await.unwrap();
        input
            .send_keys(zip_path.display().to_string())
            .await
            .unwrap();
        let key = browser.find(By::Css("#u-key")).await.unwrap();
        assert_eq!(
            key.value().await.unwrap().as_deref(),
            Some("site.zip"),
            "the key is the file's name"
        );
        click(&browser, "form[data-upload] button[type=submit]").await;
        wait_for_text(&browser, ".notice-success", "The new version is stored").await;
        browser
            .screenshot(&screenshot_path("bucket-uploaded-1280.png"))
            .await
            .unwrap();
        let rows = browser
            .find_all(By::Css("table.versions tbody tr"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        // The page showed the upload going: "Uploading…", a final 100, and a version.
        let seen: Vec<serde_json::Value> = browser
            .execute(
                "return JSON.parse(sessionStorage.getItem('seen') || '[]');",
                vec![],
            )
            .await
            .unwrap()
            .convert()
            .unwrap();
        assert!(
            seen.iter()
                .any(|v| v.as_str().is_some_and(|t| t.starts_with("Uploading"))),
            "{seen:?}"
        );
        assert!(seen.iter().any(|v| v.as_f64() == Some(100.0)), "{seen:?}");
        assert!(
            seen.iter().any(|v| v
                .as_str()
                .is_some_and(|t| t.starts_with("Uploaded: version"))),
            "{seen:?}"
        );
        browser.quit().await.unwrap();
    }
    // The pipeline watching the key started with the version, and built it.
    let list = crate::harness::api_ok(
        &app,
        &t,
        "ListPipelineExecutions",
        serde_json::json!({"pipelineName": "from-drops"}),
    )
    .await;
    let latest = list["pipelineExecutionSummaries"][0].clone();
    assert_eq!(
        latest["trigger"]["triggerType"], "PutActionRevision",
        "{list}"
    );
    let id = latest["pipelineExecutionId"].as_str().unwrap().to_string();
    let end = crate::executions::wait_for_end(&app, &t, "from-drops", &id).await;
    assert_eq!(end["status"], "Succeeded", "{end}");
}
