//! The private PostgreSQL cluster Sluice runs when no `DATABASE_URL` is given.
//!
//! Layout under the data directory:
//! - `sluice.lock`: held (flock) by the one Sluice process that owns the cluster;
//! - `pgdata/`: the cluster, created by `initdb` into `pgdata.init/` and renamed once complete, so a
//!   failed first boot leaves nothing half-made;
//! - `run/`: the Unix socket directory (mode 0700). The cluster has no TCP listener at all
//!   (`listen_addresses=''`), and local connections are trusted: reaching the socket, which only the
//!   cluster's system user and root can, is the credential;
//! - `postgres.log`: the server's own output.
//!
//! The postmaster is a child of Sluice in its own process group (a Ctrl-C in the terminal reaches
//! Sluice alone, which drains HTTP first and then stops the cluster), and it is told to shut down if
//! Sluice dies (`PR_SET_PDEATHSIG`), so a crashed Sluice does not leave an orphaned server. A
//! postmaster killed outright leaves `postmaster.pid` behind; the next start recognises and clears it.

mod binaries;
mod lock;
mod os_user;

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::watch;

pub use binaries::PgBinaries;
pub use lock::{DataDirLock, LockAttempt};
pub use os_user::{OsUser, running_as_root};

/// The database role and database Sluice's own data lives in.
pub const APP_ROLE: &str = "sluice";
/// The bootstrap superuser `initdb` creates.
pub const SUPERUSER: &str = "postgres";
/// The port number only names the socket file (`.s.PGSQL.5432`); nothing listens on TCP.
const SOCKET_PORT: u16 = 5432;
/// How long a (possibly recovering) cluster may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a fast shutdown may take before escalating to an immediate one.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Rotate `postgres.log` at start once it is this large.
const LOG_ROTATE_BYTES: u64 = 10 * 1024 * 1024;

/// Everything that can go wrong running the private cluster. Each message tells the operator what
/// happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found{}. Sluice runs its own private \
         PostgreSQL cluster and needs them installed: on Debian or Ubuntu run `apt-get install \
         postgresql` (on other systems install the PostgreSQL server package), or point SLUICE_PG_BIN \
         at the directory that holds them. Alternatively set DATABASE_URL to use an existing \
         PostgreSQL server, and no cluster is started.",
        searched_list(searched)
    )]
    MissingBinaries { searched: Vec<PathBuf> },

    #[error("cannot {action} {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "the data directory {} is in use by another running Sluice{}. Stop that process first, or \
         choose another --data-dir.",
        data_dir.display(),
        pid.map(|p| format!(" (PID {p})")).unwrap_or_default()
    )]
    InUse { data_dir: PathBuf, pid: Option<u32> },

    #[error(
        "PostgreSQL refuses to run as root, so Sluice runs it as the system user `{0}`, which does \
         not exist. Create it (installing the postgresql package does), or name another unprivileged \
         user with --pg-user."
    )]
    NoPgUser(String),

    #[error(
        "PostgreSQL runs as the system user `{user}`, which cannot reach {}: {} is not traversable \
         for it. Make it traversable (chmod o+x {}), or choose a --data-dir elsewhere.",
        data_dir.display(), blocked.display(), blocked.display()
    )]
    Untraversable {
        user: String,
        data_dir: PathBuf,
        blocked: PathBuf,
    },

    #[error(
        "{} exists but is not a PostgreSQL data directory (no PG_VERSION). Move it away and start again.",
        .0.display()
    )]
    NotACluster(PathBuf),

    #[error("initdb failed: {0}")]
    InitdbFailed(String),

    #[error("the embedded PostgreSQL server did not start: {0}")]
    StartFailed(String),

    #[error("cannot prepare the embedded PostgreSQL cluster: {0}")]
    Bootstrap(#[source] sqlx::Error),
}

fn searched_list(searched: &[PathBuf]) -> String {
    if searched.is_empty() {
        return String::new();
    }
    let dirs: Vec<_> = searched.iter().map(|d| d.display().to_string()).collect();
    format!(" (looked in {})", dirs.join(", "))
}

/// Whether the cluster fsyncs. Only tests trade durability for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Durable,
    /// fsync off: a machine crash can lose the cluster. For throwaway test clusters only.
    Volatile,
}

/// How to run a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Absolute or relative; it is created if missing and canonicalized.
    pub data_dir: PathBuf,
    pub binaries: PgBinaries,
    /// The system user to run as when this process is root. Ignored otherwise.
    pub pg_user: String,
    pub durability: Durability,
}

/// What opening a data directory for a command yielded.
pub enum Opened {
    /// This process started the cluster and must stop it.
    Started(EmbeddedPostgres),
    /// A running Sluice owns the cluster; connect through its socket.
    Attached(Box<PgConnectOptions>),
}

/// A running private cluster owned by this process.
pub struct EmbeddedPostgres {
    data_dir: PathBuf,
    socket_dir: PathBuf,
    postmaster_pid: u32,
    exited: watch::Receiver<Option<String>>,
    stopped: bool,
    _lock: DataDirLock,
}

impl std::fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedPostgres")
            .field("data_dir", &self.data_dir)
            .field("postmaster_pid", &self.postmaster_pid)
            .finish()
    }
}

/// Connection options for the application role through the socket of the cluster in `data_dir`.
pub fn app_connect_options(data_dir: &Path) -> PgConnectOptions {
    socket_options(&data_dir.join("run"), APP_ROLE, APP_ROLE)
}

fn socket_options(socket_dir: &Path, user: &str, database: &str) -> PgConnectOptions {
    PgConnectOptions::new()
        .socket(socket_dir)
        .port(SOCKET_PORT)
        .username(user)
        .database(database)
        .application_name("sluice")
}

impl EmbeddedPostgres {
    /// Opens the data directory for a one-off command: starts the cluster when no Sluice owns it,
    /// or attaches to the running owner's cluster.
    pub async fn start_or_attach(config: ClusterConfig) -> Result<Opened, EmbeddedError> {
        match Self::start(config).await {
            Ok(cluster) => Ok(Opened::Started(cluster)),
            Err(EmbeddedError::InUse { data_dir, .. }) => {
                Ok(Opened::Attached(Box::new(app_connect_options(&data_dir))))
            }
            Err(other) => Err(other),
        }
    }

    /// Starts the cluster, creating it on first use, and makes sure the application role and
    /// database exist. Fails with [`EmbeddedError::InUse`] if another Sluice owns the directory.
    pub async fn start(config: ClusterConfig) -> Result<Self, EmbeddedError> {
        let data_dir = prepare_data_dir(&config.data_dir)?;
        let lock = match DataDirLock::acquire(&data_dir).await? {
            LockAttempt::Acquired(lock) => lock,
            LockAttempt::HeldBy(pid) => return Err(EmbeddedError::InUse { data_dir, pid }),
        };
        let run_as = if running_as_root() {
            let user = OsUser::lookup(&config.pg_user)
                .ok_or_else(|| EmbeddedError::NoPgUser(config.pg_user.clone()))?;
            if user.uid == 0 {
                return Err(EmbeddedError::NoPgUser(config.pg_user.clone()));
            }
            open_for_user(&data_dir, &user)?;
            Some(user)
        } else {
            None
        };

        let pgdata = data_dir.join("pgdata");
        if !pgdata.join("PG_VERSION").exists() {
            if pgdata.exists() {
                return Err(EmbeddedError::NotACluster(pgdata));
            }
            tracing::info!(path = %pgdata.display(), "creating the embedded PostgreSQL cluster");
            initdb(&config, &data_dir, run_as.as_ref()).await?;
        }
        let socket_dir = data_dir.join("run");
        make_private_dir(&socket_dir, run_as.as_ref())?;
        clear_stale_postmaster(&pgdata).await;

        let log_path = data_dir.join("postgres.log");
        rotate_log(&log_path);
        let mut attempt = 0;
        let (postmaster_pid, exited) = loop {
            attempt += 1;
            let log_start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
            let (pid, exited) =
                spawn_postmaster(&config, &pgdata, &socket_dir, &log_path, run_as.as_ref()).await?;
            match wait_until_accepting(&socket_dir, exited.clone()).await {
                Ok(()) => break (pid, exited),
                Err(StartProblem::Exited) => {
                    let tail = log_tail(&log_path, log_start);
                    // Backends of a postmaster that was killed outright keep the old shared memory
                    // for a moment after noticing; waiting briefly is enough.
                    if tail.contains("is still in use") && attempt < 20 {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    return Err(EmbeddedError::StartFailed(format!(
                        "it exited during start-up. Its log ({}) says:\n{tail}",
                        log_path.display()
                    )));
                }
                Err(StartProblem::TimedOut) => {
                    signal(pid, libc::SIGQUIT);
                    return Err(EmbeddedError::StartFailed(format!(
                        "it did not accept connections within {} s; see {}",
                        START_TIMEOUT.as_secs(),
                        log_path.display()
                    )));
                }
            }
        };

        let cluster = Self {
            data_dir,
            socket_dir,
            postmaster_pid,
            exited,
            stopped: false,
            _lock: lock,
        };
        let mut conn = PgConnection::connect_with(&cluster.superuser_connect_options())
            .await
            .map_err(EmbeddedError::Bootstrap)?;
        crate::db::cluster_admin::ensure_app_role_and_database(&mut conn, APP_ROLE)
            .await
            .map_err(EmbeddedError::Bootstrap)?;
        let _ = conn.close().await;
        tracing::info!(
            data_dir = %cluster.data_dir.display(),
            pid = cluster.postmaster_pid,
            "embedded PostgreSQL is running"
        );
        Ok(cluster)
    }

    /// Options to connect as the application role to the application database.
    pub fn app_connect_options(&self) -> PgConnectOptions {
        socket_options(&self.socket_dir, APP_ROLE, APP_ROLE)
    }

    /// Options to connect as the bootstrap superuser (cluster administration, test harness).
    pub fn superuser_connect_options(&self) -> PgConnectOptions {
        socket_options(&self.socket_dir, SUPERUSER, "postgres")
    }

    /// The canonical data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The postmaster's process id.
    pub fn postmaster_pid(&self) -> u32 {
        self.postmaster_pid
    }

    /// Fast shutdown: disconnects clients, checkpoints and exits. Escalates to an immediate
    /// shutdown if that takes longer than 30 s.
    pub async fn stop(mut self) {
        self.stopped = true;
        if self.exited.borrow().is_some() {
            return;
        }
        signal(self.postmaster_pid, libc::SIGINT);
        let mut exited = self.exited.clone();
        let waited = tokio::time::timeout(STOP_TIMEOUT, exited.wait_for(Option::is_some))
            .await
            .is_ok();
        if !waited {
            tracing::warn!("PostgreSQL did not stop within 30 s; forcing an immediate shutdown");
            signal(self.postmaster_pid, libc::SIGQUIT);
            let _ = tokio::time::timeout(Duration::from_secs(10), exited.wait_for(Option::is_some))
                .await;
        }
        tracing::info!("embedded PostgreSQL stopped");
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if !self.stopped && self.exited.borrow().is_none() {
            signal(self.postmaster_pid, libc::SIGINT);
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory effects; a stale pid only yields ESRCH.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn prepare_data_dir(requested: &Path) -> Result<PathBuf, EmbeddedError> {
    let io_err = |action, source| EmbeddedError::DataDir {
        path: requested.to_path_buf(),
        action,
        source,
    };
    if !requested.exists() {
        std::fs::create_dir_all(requested).map_err(|e| io_err("create the data directory", e))?;
        std::fs::set_permissions(requested, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err("set permissions on", e))?;
    }
    let dir = requested
        .canonicalize()
        .map_err(|e| io_err("resolve the data directory", e))?;
    if !dir.is_dir() {
        return Err(io_err(
            "use as the data directory",
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    Ok(dir)
}

/// Lets `user` traverse the data directory and checks it can reach it from `/`.
fn open_for_user(data_dir: &Path, user: &OsUser) -> Result<(), EmbeddedError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(data_dir).map_err(|source| EmbeddedError::DataDir {
        path: data_dir.to_path_buf(),
        action: "inspect",
        source,
    })?;
    // Traverse only: the cluster's own directories below are private to `user`.
    if meta.mode() & 0o001 == 0 {
        std::fs::set_permissions(
            data_dir,
            std::fs::Permissions::from_mode(meta.mode() | 0o011),
        )
        .map_err(|source| EmbeddedError::DataDir {
            path: data_dir.to_path_buf(),
            action: "set permissions on",
            source,
        })?;
    }
    match os_user::first_untraversable(data_dir, user) {
        Some(blocked) => Err(EmbeddedError::Untraversable {
            user: user.name.clone(),
            data_dir: data_dir.to_path_buf(),
            blocked,
        }),
        None => Ok(()),
    }
}

fn make_private_dir(dir: &Path, owner: Option<&OsUser>) -> Result<(), EmbeddedError> {
    let err = |action, source| EmbeddedError::DataDir {
        path: dir.to_path_buf(),
        action,
        source,
    };
    if !dir.exists() {
        std::fs::create_dir(dir).map_err(|e| err("create", e))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| err("set permissions on", e))?;
    if let Some(user) = owner {
        os_user::chown(dir, user)?;
    }
    Ok(())
}

async fn initdb(
    config: &ClusterConfig,
    data_dir: &Path,
    run_as: Option<&OsUser>,
) -> Result<(), EmbeddedError> {
    let staging = data_dir.join("pgdata.init");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|source| EmbeddedError::DataDir {
            path: staging.clone(),
            action: "remove the leftover of a failed first start,",
            source,
        })?;
    }
    make_private_dir(&staging, run_as)?;
    let mut cmd = tokio::process::Command::new(config.binaries.initdb());
    cmd.arg("--pgdata")
        .arg(&staging)
        .arg("--username")
        .arg(SUPERUSER)
        .args(["--auth", "trust", "--encoding", "UTF8", "--locale", "C"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if config.durability == Durability::Volatile {
        cmd.arg("--no-sync");
    }
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
    let output = cmd.output().await.map_err(|e| {
        EmbeddedError::InitdbFailed(format!(
            "cannot run {}: {e}",
            config.binaries.initdb().display()
        ))
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let _ = std::fs::remove_dir_all(&staging);
        return Err(EmbeddedError::InitdbFailed(stderr.trim().to_string()));
    }
    let pgdata = data_dir.join("pgdata");
    std::fs::rename(&staging, &pgdata).map_err(|source| EmbeddedError::DataDir {
        path: pgdata,
        action: "move the new cluster into",
        source,
    })
}

/// Makes a data directory left by a crash startable again.
///
/// PostgreSQL clears a `postmaster.pid` whose process is gone by itself, and checks through the
/// shared-memory key recorded there that no old backend is still attached, so the file is normally
/// left alone. Two cases need help: a postmaster still running on this directory (orphaned: we hold
/// the lock, so no Sluice owns it), which is shut down; and a recorded PID that now belongs to an
/// unrelated process (PID reuse, common in containers), which PostgreSQL would take for a live
/// server, so the file is removed once no process works in the directory.
async fn clear_stale_postmaster(pgdata: &Path) {
    let pid_file = pgdata.join("postmaster.pid");
    let Ok(content) = std::fs::read_to_string(&pid_file) else {
        return;
    };
    let Some(pid) = content
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<u32>().ok())
    else {
        let _ = std::fs::remove_file(&pid_file);
        return;
    };
    if works_in(pid, pgdata) {
        tracing::warn!(
            pid,
            "shutting down an orphaned PostgreSQL server on this data directory"
        );
        signal(pid, libc::SIGINT);
        wait_for_exit(&[pid], STOP_TIMEOUT, libc::SIGQUIT).await;
    }
    // Backends of a postmaster that was killed outright notice its death and exit on their own.
    let leftovers = processes_working_in(pgdata);
    if !leftovers.is_empty() {
        tracing::warn!(
            count = leftovers.len(),
            "waiting for orphaned PostgreSQL backends to exit"
        );
        wait_for_exit(&leftovers, Duration::from_secs(10), libc::SIGKILL).await;
    }
    if process_exists(pid) && !works_in(pid, pgdata) {
        tracing::info!(
            pid,
            "removing a postmaster.pid whose PID now belongs to another process"
        );
        let _ = std::fs::remove_file(&pid_file);
    }
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether process `pid` has `dir` as its working directory (PostgreSQL processes `chdir` into
/// their data directory).
fn works_in(pid: u32, dir: &Path) -> bool {
    std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir)
}

fn processes_working_in(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id() && works_in(pid, dir))
        .collect()
}

/// Waits for the processes to exit; after `patience`, sends them `escalation` and waits a little more.
async fn wait_for_exit(pids: &[u32], patience: Duration, escalation: libc::c_int) {
    let start = Instant::now();
    let mut escalated = false;
    while pids.iter().any(|&p| process_exists(p) && !is_zombie(p)) {
        if !escalated && start.elapsed() > patience {
            pids.iter().for_each(|&p| signal(p, escalation));
            escalated = true;
        }
        if start.elapsed() > patience * 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn rotate_log(log_path: &Path) {
    if std::fs::metadata(log_path).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        let _ = std::fs::rename(log_path, log_path.with_extension("log.1"));
    }
}

async fn spawn_postmaster(
    config: &ClusterConfig,
    pgdata: &Path,
    socket_dir: &Path,
    log_path: &Path,
    run_as: Option<&OsUser>,
) -> Result<(u32, watch::Receiver<Option<String>>), EmbeddedError> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|source| EmbeddedError::DataDir {
            path: log_path.to_path_buf(),
            action: "open",
            source,
        })?;
    let log_err = log.try_clone().map_err(|source| EmbeddedError::DataDir {
        path: log_path.to_path_buf(),
        action: "open",
        source,
    })?;
    let mut cmd = Command::new(config.binaries.postgres());
    cmd.arg("-D")
        .arg(pgdata)
        .arg("-c")
        .arg("listen_addresses=")
        .arg("-c")
        .arg(format!("unix_socket_directories={}", socket_dir.display()))
        .args(["-c", "unix_socket_permissions=0700"])
        .args(["-c", &format!("port={SOCKET_PORT}")])
        .args(["-c", "logging_collector=off"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    if config.durability == Durability::Volatile {
        cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"]);
    }
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
    // SAFETY: the closure runs in the forked child before exec and calls only prctl, which is
    // async-signal-safe. It runs after std has switched uid/gid, which would otherwise clear it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so the postmaster is
    // forked from a thread that lives exactly as long as it does, and reports its exit.
    let (pid_tx, pid_rx) = tokio::sync::oneshot::channel();
    let (exit_tx, exit_rx) = watch::channel(None);
    let program = config.binaries.postgres();
    std::thread::Builder::new()
        .name("embedded-postgres".into())
        .spawn(move || match cmd.spawn() {
            Ok(mut child) => {
                let _ = pid_tx.send(Ok(child.id()));
                let status = match child.wait() {
                    Ok(status) => status.to_string(),
                    Err(e) => format!("wait failed: {e}"),
                };
                let _ = exit_tx.send(Some(status));
            }
            Err(e) => {
                let _ = pid_tx.send(Err(e));
            }
        })
        .map_err(|e| EmbeddedError::StartFailed(format!("cannot start a thread: {e}")))?;
    let pid = pid_rx
        .await
        .map_err(|_| EmbeddedError::StartFailed("the supervisor thread ended".into()))?
        .map_err(|e| {
            EmbeddedError::StartFailed(format!("cannot run {}: {e}", program.display()))
        })?;
    Ok((pid, exit_rx))
}

enum StartProblem {
    Exited,
    TimedOut,
}

async fn wait_until_accepting(
    socket_dir: &Path,
    mut exited: watch::Receiver<Option<String>>,
) -> Result<(), StartProblem> {
    let options = socket_options(socket_dir, SUPERUSER, "postgres");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if exited.borrow_and_update().is_some() {
            return Err(StartProblem::Exited);
        }
        if let Ok(conn) = PgConnection::connect_with(&options).await {
            let _ = conn.close().await;
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(StartProblem::TimedOut);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = exited.changed() => {}
        }
    }
}

/// The last lines the server wrote to its log since `from`.
fn log_tail(log_path: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(log_path) {
        let _ = file.seek(SeekFrom::Start(from));
        let _ = file.take(64 * 1024).read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(15);
    lines[start..].join("\n")
}
