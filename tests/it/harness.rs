//! The test harness: one PostgreSQL cluster per test run, a fresh database per test, the real
//! server on a random port, and helpers to run the `sluice` binary.
//!
//! The cluster is Sluice's own embedded cluster (so that code is exercised by every test), in a
//! temporary directory, unless `TEST_DATABASE_URL` names a server to use instead (its user must be
//! allowed to create databases). Each test's database is copied from a migrated template database,
//! which is much faster than migrating each one.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sluice::clock::Clock;
use sluice::config::{
    ArtifactLocation, BodyLimit, DatabaseTarget, PublicUrl, S3Options, ServeSettings, WorkerCount,
};
use sluice::embedded_pg::{ClusterConfig, Durability, EmbeddedPostgres, PgBinaries};
use sluice::startup::Application;
use sluice::web::DatabaseMode;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};

/// The shared cluster (or external server) and its migrated template database.
pub struct Harness {
    admin: PgConnectOptions,
    template: String,
    /// Set when the harness runs its own cluster; kept alive for the whole run.
    _cluster: Option<EmbeddedPostgres>,
}

/// The harness, started on first use.
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        // Started on a runtime of its own, so that it outlives any one test's runtime.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(start_harness())
        })
        .join()
        .expect("harness start-up panicked")
    })
}

async fn start_harness() -> Harness {
    sluice::telemetry::init("warn");
    let (admin, cluster) = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) => (
            url.parse::<PgConnectOptions>().expect("TEST_DATABASE_URL"),
            None,
        ),
        Err(_) => {
            remove_stale_harness_dirs();
            let cluster = EmbeddedPostgres::start(ClusterConfig {
                data_dir: harness_dir(std::process::id()),
                binaries: pg_binaries(),
                pg_user: "postgres".into(),
                durability: Durability::Volatile,
            })
            .await
            .expect("the embedded test cluster must start");
            (cluster.superuser_connect_options(), Some(cluster))
        }
    };
    let template = format!("sluice_template_{}", std::process::id());
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .expect("admin connection");
    execute(&mut conn, format!("DROP DATABASE IF EXISTS \"{template}\"")).await;
    execute(&mut conn, format!("CREATE DATABASE \"{template}\"")).await;
    let pool = sluice::db::connect(admin.clone().database(&template), 1)
        .await
        .expect("connect to template");
    sluice::startup::prepare_schema(&pool)
        .await
        .expect("migrate template");
    // CREATE DATABASE … TEMPLATE needs the template to have no connections.
    pool.close().await;
    Harness {
        admin,
        template,
        _cluster: cluster,
    }
}

/// Runs administrative SQL built from names the harness made itself.
async fn execute(conn: &mut PgConnection, sql: String) {
    conn.execute(sqlx::AssertSqlSafe(sql.clone()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn harness_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("sluice-it-{pid}"))
}

/// Harness directories of earlier runs whose process is gone (the cluster stops with its process).
fn remove_stale_harness_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("sluice-it-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The machine's PostgreSQL server binaries.
pub fn pg_binaries() -> PgBinaries {
    PgBinaries::locate(None, std::env::var("PATH").ok().as_deref())
        .expect("PostgreSQL server binaries (apt-get install postgresql)")
}

/// A fresh database for one test.
pub struct TestDatabase {
    pub name: String,
    pub options: PgConnectOptions,
}

impl TestDatabase {
    /// A copy of the migrated template.
    pub async fn migrated() -> Self {
        Self::create(true).await
    }

    /// An empty database, never migrated.
    pub async fn empty() -> Self {
        Self::create(false).await
    }

    async fn create(migrated: bool) -> Self {
        let h = harness();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let sql = if migrated {
            format!("CREATE DATABASE \"{name}\" TEMPLATE \"{}\"", h.template)
        } else {
            format!("CREATE DATABASE \"{name}\"")
        };
        let mut conn = PgConnection::connect_with(&h.admin)
            .await
            .expect("admin connection");
        execute(&mut conn, sql).await;
        let _ = conn.close().await;
        Self {
            options: h.admin.clone().database(&name),
            name,
        }
    }

    /// Drops the database, disconnecting everyone using it (simulates losing the database).
    pub async fn drop_now(&self) {
        let mut conn = PgConnection::connect_with(&harness().admin)
            .await
            .expect("admin connection");
        execute(
            &mut conn,
            format!("DROP DATABASE \"{}\" WITH (FORCE)", self.name),
        )
        .await;
    }

    /// A `postgres://` URL for the `sluice` binary.
    pub fn url(&self) -> String {
        options_url(&self.options)
    }
}

/// A URL for connect options (socket or TCP).
pub fn options_url(options: &PgConnectOptions) -> String {
    let db = options.get_database().unwrap_or("postgres");
    match options.get_socket() {
        Some(socket) => format!(
            "postgres:///{db}?host={}&port={}&user={}",
            socket.display(),
            options.get_port(),
            options.get_username()
        ),
        None => format!(
            "postgres://{}@{}:{}/{db}",
            options.get_username(),
            options.get_host(),
            options.get_port()
        ),
    }
}

/// A running server on its own database.
pub struct TestApp {
    pub address: String,
    /// Stops the server ([`TestApp::stop`]).
    running: Arc<tokio::sync::Mutex<Option<Running>>>,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    /// The server's clock; tests move it forward instead of sleeping.
    pub clock: Clock,
    /// The server's master key (base64), for `sluice audit verify` and other commands.
    pub master_key: String,
    /// What [`TestApp::restart`] starts it again with.
    key: [u8; 32],
    workers: u16,
}

impl TestApp {
    /// Which of `tables` hold `needle` anywhere in a row's text: a secret that must be stored
    /// sealed or not at all shows up nowhere.
    pub async fn tables_holding(&self, tables: &[&str], needle: &str) -> Vec<String> {
        let mut c = PgConnection::connect_with(&self.db.options).await.unwrap();
        let mut holding = Vec::new();
        for table in tables {
            // The table names are the calling test's constants.
            let found: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM {table} t WHERE strpos(t::text, $1) > 0"
            )))
            .bind(needle)
            .fetch_one(&mut c)
            .await
            .unwrap();
            if found > 0 {
                holding.push(table.to_string());
            }
        }
        holding
    }

    /// Stops the server as a signal would: HTTP drains, its workers finish and its pool is
    /// recorded as stopped.
    pub async fn stop(&self) {
        if let Some((handle, task)) = self.running.lock().await.take() {
            handle.stop(true).await;
            let _ = task.await;
        }
    }

    /// Stops the server and starts it again on the same address and database (its clients'
    /// sessions stay valid; a browser reconnects).
    pub async fn restart(&self) {
        self.stop().await;
        let bind = self
            .address
            .trim_start_matches("http://")
            .parse()
            .expect("the address");
        let served = serve_at(
            bind,
            &self.db.options,
            None,
            false,
            self.workers,
            self.key,
            self.clock.clone(),
            local_artifacts(),
        )
        .await;
        *self.running.lock().await = Some(served.running);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }
}

/// Runs the real server on 127.0.0.1:0 against a freshly migrated database.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(TestDatabase::migrated().await).await
}

/// Runs the real server on the given database (which may be unmigrated).
pub async fn spawn_app_on(db: TestDatabase) -> TestApp {
    spawn(db, None, false, 0).await
}

/// Runs the real server with `workers` job workers (other test servers run none, so jobs stay
/// where the test can see them).
pub async fn spawn_app_with_workers(workers: u16) -> TestApp {
    spawn(TestDatabase::migrated().await, None, false, workers).await
}

/// Runs the real server on the given database, as reached at `public_url`.
pub async fn spawn_app_with(db: TestDatabase, public_url: &str) -> TestApp {
    spawn(db, Some(public_url.parse::<PublicUrl>().unwrap()), false, 0).await
}

/// Runs the real server behind a (pretend) reverse proxy on 127.0.0.1: `X-Forwarded-For` entries
/// added by that address are believed.
pub async fn spawn_app_behind_proxy() -> TestApp {
    spawn(TestDatabase::migrated().await, None, true, 0).await
}

/// Runs the real server with `workers` job workers and the given artifact store.
pub async fn spawn_app_with_artifact_store(
    workers: u16,
    location: ArtifactLocation,
    s3: S3Options,
) -> TestApp {
    spawn_with_store(
        TestDatabase::migrated().await,
        None,
        false,
        workers,
        (location, s3),
    )
    .await
}

fn local_artifacts() -> (ArtifactLocation, S3Options) {
    (
        ArtifactLocation::Directory(artifact_dir()),
        S3Options::default(),
    )
}

async fn spawn(
    db: TestDatabase,
    public_url: Option<PublicUrl>,
    trust_proxy: bool,
    workers: u16,
) -> TestApp {
    spawn_with_store(db, public_url, trust_proxy, workers, local_artifacts()).await
}

async fn spawn_with_store(
    db: TestDatabase,
    public_url: Option<PublicUrl>,
    trust_proxy: bool,
    workers: u16,
    artifacts: (ArtifactLocation, S3Options),
) -> TestApp {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let clock = Clock::default();
    let served = serve(
        &db.options,
        public_url,
        trust_proxy,
        workers,
        key,
        clock.clone(),
        artifacts,
    )
    .await;
    TestApp {
        address: served.address,
        running: Arc::new(tokio::sync::Mutex::new(Some(served.running))),
        client: client(),
        db,
        clock,
        key,
        workers,
        master_key: {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(key)
        },
    }
}

/// Another server on `app`'s database, with its master key and `workers` workers; its address.
pub async fn spawn_peer(app: &TestApp, workers: u16) -> String {
    spawn_peer_with_key(app, workers, &app.master_key).await
}

/// Another server on `app`'s database with the given master key (base64); its address.
pub async fn spawn_peer_with_key(app: &TestApp, workers: u16, master_key: &str) -> String {
    use base64::Engine;
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(master_key.trim())
        .unwrap()
        .try_into()
        .unwrap();
    let served = serve(
        &app.db.options,
        None,
        false,
        workers,
        key,
        app.clock.clone(),
        local_artifacts(),
    )
    .await;
    // Peers run until the test ends.
    std::mem::forget(served.running);
    served.address
}

/// A running test server: its address, and what stops it.
struct Served {
    address: String,
    running: Running,
}

type Running = (
    sluice::startup::StopHandle,
    tokio::task::JoinHandle<std::io::Result<()>>,
);

/// The directory every test server keeps artifacts in (`sluice worker` processes get it too).
pub fn artifact_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("sluice-test-artifacts")
}

async fn serve(
    options: &PgConnectOptions,
    public_url: Option<PublicUrl>,
    trust_proxy: bool,
    workers: u16,
    key: [u8; 32],
    clock: Clock,
    artifacts: (ArtifactLocation, S3Options),
) -> Served {
    let any_port = "127.0.0.1:0".parse().unwrap();
    serve_at(
        any_port,
        options,
        public_url,
        trust_proxy,
        workers,
        key,
        clock,
        artifacts,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn serve_at(
    bind: std::net::SocketAddr,
    options: &PgConnectOptions,
    public_url: Option<PublicUrl>,
    trust_proxy: bool,
    workers: u16,
    key: [u8; 32],
    clock: Clock,
    (location, s3): (ArtifactLocation, S3Options),
) -> Served {
    let settings = ServeSettings {
        bind,
        public_url,
        trusted_proxies: if trust_proxy {
            sluice::config::TrustedProxies::new(vec!["127.0.0.1/32".parse().unwrap()])
        } else {
            Default::default()
        },
        metrics_allow: Vec::new(),
        token_default_expiry_days: Some(90),
        session_idle_minutes: 30,
        session_lifetime_hours: 12,
        data_dir: std::env::temp_dir(),
        master_key: None,
        database: DatabaseTarget::External(Box::new(options.clone().into())),
        workers: workers.to_string().parse::<WorkerCount>().unwrap(),
        runner_user: "nobody".into(),
        deploy_root: None,
        webhook_allow_private: true,
        poll_interval_secs: 1,
        labels: Default::default(),
        artifacts: sluice::config::ArtifactSettings {
            location,
            s3,
            scratch: std::env::temp_dir().join("sluice-test-scratch"),
            max_bytes: 1 << 30,
            retention_days: 365,
        },
        body_limit: BodyLimit::DEFAULT,
        shutdown_timeout_secs: 5,
    };
    let pool = sluice::db::connect(options.clone(), 4 + u32::from(workers) * 2)
        .await
        .expect("connect to test database");
    let master = sluice::sealing::MasterKey::from_bytes(key);
    let keys = match sluice::ops::keys::load(&pool, &master, time::OffsetDateTime::now_utc()).await
    {
        Ok(keys) => keys,
        // A test of a database without the schema (`sluice serve` migrates first; these
        // servers do not): the keys a first start would make.
        Err(sluice::ops::keys::KeysError::Database(e))
            if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01") =>
        {
            sluice::ops::keys::Keys {
                chain: sluice::audit::ChainKey::from_master(&master),
                root: master,
            }
        }
        Err(e) => panic!("the test server's keys: {e}"),
    };
    let app = Application::build(&settings, pool, DatabaseMode::External, clock, keys)
        .expect("build app");
    let address = format!("http://{}", app.local_addr());
    let handle = app.handle();
    let task = tokio::spawn(app.run_until_stopped());
    Served {
        address,
        running: (handle, task),
    }
}

/// An HTTP client that keeps cookies and does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

/// A temporary directory PostgreSQL's system user can traverse (it is removed on drop).
pub fn temp_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix("sluice-test-")
        .permissions(std::fs::Permissions::from_mode(0o755))
        .tempdir()
        .expect("temp dir")
}

/// The `sluice` binary under test.
pub fn sluice_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    // The environment of the developer's shell must not leak into the tests.
    for var in [
        "DATABASE_URL",
        "SLUICE_BIND",
        "SLUICE_DATA_DIR",
        "SLUICE_PUBLIC_URL",
        "SLUICE_WORKERS",
        "SLUICE_PG_BIN",
        "SLUICE_PG_USER",
        "SLUICE_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("SLUICE_LOG", "info,sqlx=warn").stdin(Stdio::null());
    cmd
}

/// A `sluice` process whose standard error is collected as it runs.
pub struct SluiceProcess {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl SluiceProcess {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Self { child, stderr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the "listening on http://ADDR" line; panics with the output if the process exits
    /// or takes too long.
    pub fn wait_listening(&mut self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(addr) = self
                .stderr()
                .lines()
                .find_map(|l| l.split("listening on http://").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.parse().ok())
            {
                return addr;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "sluice exited ({status}) before listening:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not start:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for exit (bounded) and returns the exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the reader thread drain the pipe.
                std::thread::sleep(Duration::from_millis(50));
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not exit:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SluiceProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `sluice` to completion; returns (exit code, stdout, stderr).
pub fn run_sluice(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = sluice_command();
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run sluice");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether a process exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Polls `cond` until true or the timeout passes.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// How many migrations the binary carries.
pub fn migration_count() -> usize {
    sluice::db::MIGRATOR.iter().count()
}

/// The first administrator every signed-in test uses.
pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// Completes first-run set-up; the client is then signed in as [`ADMIN`].
    pub async fn setup_admin(&self) {
        let res = self
            .client
            .post(self.url("/setup"))
            .header("Origin", &self.address)
            .form(&[
                ("username", ADMIN),
                ("password", ADMIN_PASSWORD),
                ("password_confirm", ADMIN_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "setup: {}", res.text().await.unwrap());
    }

    /// A new client signed in as `user` (with its own cookie jar).
    pub async fn sign_in(&self, user: &str, password: &str) -> reqwest::Client {
        let client = client();
        let res = client
            .post(self.url("/login"))
            .header("Origin", &self.address)
            .form(&[("username", user), ("password", password), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            303,
            "sign-in as {user}: {}",
            res.text().await.unwrap()
        );
        client
    }

    /// The HTML of a console page, as the signed-in `self.client` gets it.
    pub async fn page(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The CSRF token of `client`'s session, read from a page's hidden field.
    pub async fn csrf_token(&self, client: &reqwest::Client) -> String {
        let html = client
            .get(self.url("/account"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        html.split("name=\"csrf_token\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a form with a CSRF token")
            .to_string()
    }

    /// Creates an API token for `client`'s user through the account page (confirming
    /// `password`), follows the redirect and reads the token shown once.
    pub async fn console_token_as(
        &self,
        client: &reqwest::Client,
        password: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let mut fields = vec![("name", "test"), ("password", password)];
        fields.extend_from_slice(extra);
        let res = self.post_form(client, "/account/tokens", &fields).await;
        assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
        let location = res.headers()["location"].to_str().unwrap().to_string();
        let html = client
            .get(self.url(&location))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        html.split(r#"id="new-token">"#)
            .nth(1)
            .and_then(|r| r.split('<').next())
            .expect("the new token is shown once")
            .to_string()
    }

    /// Posts a console form as a browser would (same origin, with the session's CSRF token).
    pub async fn post_form(
        &self,
        client: &reqwest::Client,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let token = self.csrf_token(client).await;
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf_token", &token));
        client
            .post(self.url(path))
            .header("Origin", &self.address)
            .form(&all)
            .send()
            .await
            .unwrap()
    }
}

// ---- The API, as a client calls it --------------------------------------------------------------

/// A fresh app with the administrator set up, and an API token of theirs.
pub async fn admin_api() -> (TestApp, String) {
    let app = spawn_app().await;
    app.setup_admin().await;
    let token = app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await;
    (app, token)
}

/// Calls one API operation; the status and the JSON answer.
pub async fn api_call(
    app: &TestApp,
    token: &str,
    op: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let res = client()
        .post(app.url(&format!("/api/v1/{op}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{op}: not JSON: {text}")),
    )
}

/// Calls one API operation that must succeed.
pub async fn api_ok(
    app: &TestApp,
    token: &str,
    op: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let (status, out) = api_call(app, token, op, body).await;
    assert_eq!(status, 200, "{op}: {out}");
    out
}

/// The password of the users [`user_with_policy`] makes.
pub const USER_PASSWORD: &str = "a long and unusual passphrase 42";

/// A user with a password and, optionally, one customer policy; returns their API token.
pub async fn user_with_policy(
    app: &TestApp,
    admin: &str,
    name: &str,
    policy: Option<serde_json::Value>,
) -> String {
    api_ok(
        app,
        admin,
        "CreateUser",
        serde_json::json!({"userName": name, "password": USER_PASSWORD}),
    )
    .await;
    if let Some(doc) = policy {
        let policy_name = format!("{name}-policy");
        api_ok(
            app,
            admin,
            "CreatePolicy",
            serde_json::json!({"policyName": policy_name, "policyDocument": doc.to_string()}),
        )
        .await;
        api_ok(
            app,
            admin,
            "AttachUserPolicy",
            serde_json::json!({"userName": name, "policyName": policy_name}),
        )
        .await;
    }
    let signed_in = app.sign_in(name, USER_PASSWORD).await;
    app.console_token_as(&signed_in, USER_PASSWORD, &[]).await
}
