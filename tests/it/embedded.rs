//! The embedded PostgreSQL cluster: creation, reuse, crash recovery, ownership, and the errors an
//! operator can meet.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use sluice::embedded_pg::{
    ClusterConfig, Durability, EmbeddedError, EmbeddedPostgres, OsUser, PgBinaries, running_as_root,
};
use sqlx::{Connection, Executor, PgConnection, Row};

use crate::harness::{
    SluiceProcess, eventually, migration_count, pg_binaries, process_alive, run_sluice,
    sluice_command, temp_dir,
};

fn config(data_dir: &Path, binaries: PgBinaries) -> ClusterConfig {
    ClusterConfig {
        data_dir: data_dir.to_path_buf(),
        binaries,
        pg_user: "postgres".into(),
        durability: Durability::Volatile,
    }
}

async fn app_connection(cluster: &EmbeddedPostgres) -> PgConnection {
    PgConnection::connect_with(&cluster.app_connect_options())
        .await
        .expect("connect as the application role")
}

#[tokio::test]
async fn first_boot_creates_the_cluster_and_the_second_reuses_it() {
    let dir = temp_dir();
    let data = dir.path().join("data");

    let cluster = EmbeddedPostgres::start(config(&data, pg_binaries()))
        .await
        .unwrap();
    assert!(data.join("pgdata/PG_VERSION").exists());
    assert!(!data.join("pgdata.init").exists());
    let socket_mode = std::fs::metadata(data.join("run")).unwrap().mode() & 0o777;
    assert_eq!(socket_mode, 0o700, "socket directory is private");
    let mut conn = app_connection(&cluster).await;
    let who: (String, String) =
        sqlx::query_as("SELECT current_user::text, current_database()::text")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(who, ("sluice".into(), "sluice".into()));
    let listen: String = sqlx::query_scalar("SHOW listen_addresses")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(listen, "", "no TCP listener");
    conn.execute("CREATE TABLE survives_restart (x int); INSERT INTO survives_restart VALUES (42)")
        .await
        .unwrap();
    conn.close().await.unwrap();
    let first_pid = cluster.postmaster_pid();
    cluster.stop().await;
    assert!(!process_alive(first_pid));
    assert!(
        !data.join("pgdata/postmaster.pid").exists(),
        "clean shutdown"
    );

    let created = std::fs::metadata(data.join("pgdata/PG_VERSION"))
        .unwrap()
        .modified()
        .unwrap();
    let cluster = EmbeddedPostgres::start(config(&data, pg_binaries()))
        .await
        .unwrap();
    let modified = std::fs::metadata(data.join("pgdata/PG_VERSION"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(created, modified, "the cluster was reused, not re-created");
    let mut conn = app_connection(&cluster).await;
    let row = conn
        .fetch_one("SELECT x FROM survives_restart")
        .await
        .unwrap();
    assert_eq!(row.get::<i32, _>(0), 42);
    conn.close().await.unwrap();
    cluster.stop().await;
}

#[tokio::test]
async fn a_postmaster_killed_outright_is_recovered_on_the_next_start() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    // Durable, as in production: committed data must survive the crash.
    let durable = |binaries| ClusterConfig {
        durability: Durability::Durable,
        ..config(&data, binaries)
    };
    let cluster = EmbeddedPostgres::start(durable(pg_binaries()))
        .await
        .unwrap();
    let mut conn = app_connection(&cluster).await;
    conn.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (7)")
        .await
        .unwrap();
    drop(conn);
    let pid = cluster.postmaster_pid();
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    assert!(eventually(Duration::from_secs(10), || !process_alive(pid)));
    assert!(
        data.join("pgdata/postmaster.pid").exists(),
        "a crash leaves the pid file"
    );
    drop(cluster);

    let cluster = EmbeddedPostgres::start(durable(pg_binaries()))
        .await
        .unwrap();
    let mut conn = app_connection(&cluster).await;
    let x: i32 = sqlx::query_scalar("SELECT x FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(x, 7);
    conn.close().await.unwrap();
    cluster.stop().await;
}

#[tokio::test]
async fn a_pid_file_naming_a_reused_pid_does_not_block_the_start() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let cluster = EmbeddedPostgres::start(config(&data, pg_binaries()))
        .await
        .unwrap();
    cluster.stop().await;
    // After a crash and a reboot, the PID in postmaster.pid may belong to an unrelated process,
    // which PostgreSQL alone would take for a running server when it may signal it (same user).
    let mut sleep = std::process::Command::new("sleep");
    sleep.arg("60");
    if running_as_root() {
        use std::os::unix::process::CommandExt;
        let pg = OsUser::lookup("postgres").expect("the postgres user exists");
        sleep.uid(pg.uid).gid(pg.gid);
    }
    let mut unrelated = sleep.spawn().unwrap();
    std::fs::write(
        data.join("pgdata/postmaster.pid"),
        format!("{}\n{}\n", unrelated.id(), data.join("pgdata").display()),
    )
    .unwrap();
    let cluster = EmbeddedPostgres::start(config(&data, pg_binaries())).await;
    unrelated.kill().unwrap();
    unrelated.wait().unwrap();
    cluster
        .expect("start despite the stale pid file")
        .stop()
        .await;
}

#[tokio::test]
async fn postgres_runs_as_the_postgres_user_when_sluice_is_root() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let cluster = EmbeddedPostgres::start(config(&data, pg_binaries()))
        .await
        .unwrap();
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", cluster.postmaster_pid())).unwrap();
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    let expected = if running_as_root() {
        OsUser::lookup("postgres")
            .expect("the postgres user exists")
            .uid
    } else {
        unsafe { libc::geteuid() }
    };
    assert_eq!(uid, expected, "effective uid of the postmaster");
    assert_ne!(uid, 0, "never root");
    assert_eq!(
        std::fs::metadata(data.join("pgdata")).unwrap().uid(),
        expected
    );
    assert_eq!(std::fs::metadata(data.join("run")).unwrap().uid(), expected);
    cluster.stop().await;
}

#[tokio::test]
async fn a_failed_first_boot_leaves_nothing_half_made_and_can_be_retried() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    // A binary directory whose initdb fails (the real postgres beside it).
    let broken = dir.path().join("broken-bin");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(
        broken.join("initdb"),
        "#!/bin/sh\necho 'initdb: simulated failure' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(
        broken.join("initdb"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        pg_binaries().bindir().join("postgres"),
        broken.join("postgres"),
    )
    .unwrap();
    let broken = PgBinaries::locate(Some(&broken), None).unwrap();

    let err = EmbeddedPostgres::start(config(&data, broken))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EmbeddedError::InitdbFailed(ref m) if m.contains("simulated failure")),
        "{err}"
    );
    assert!(!data.join("pgdata").exists());
    assert!(!data.join("pgdata.init").exists());

    let cluster = EmbeddedPostgres::start(config(&data, pg_binaries()))
        .await
        .unwrap();
    cluster.stop().await;
}

#[test]
fn missing_binaries_give_one_clear_paragraph_and_exit_2() {
    let dir = temp_dir();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let data = dir.path().join("data");
    let (code, _, stderr) = run_sluice(
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ],
        &[("SLUICE_PG_BIN", empty.to_str().unwrap())],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("PostgreSQL server binaries (initdb, postgres) were not found"),
        "{stderr}"
    );
    assert!(
        stderr.contains(empty.to_str().unwrap()),
        "names where it looked: {stderr}"
    );
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[test]
fn a_data_directory_that_is_a_file_is_refused_clearly() {
    let dir = temp_dir();
    let file = dir.path().join("file");
    std::fs::write(&file, "not a directory").unwrap();
    for data in [file.clone(), file.join("below")] {
        let (code, _, stderr) = run_sluice(
            &[
                "serve",
                "--data-dir",
                data.to_str().unwrap(),
                "--bind",
                "127.0.0.1:0",
            ],
            &[],
        );
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
        assert!(
            stderr.to_lowercase().contains("not a directory"),
            "{stderr}"
        );
    }
}

#[test]
fn a_data_directory_in_use_is_refused_and_migrate_attaches_to_it() {
    let n = migration_count();
    let dir = temp_dir();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let mut first = SluiceProcess::spawn({
        let mut cmd = sluice_command();
        cmd.args(["serve", "--data-dir", data_arg, "--bind", "127.0.0.1:0"]);
        cmd
    });
    first.wait_listening();

    let (code, _, stderr) = run_sluice(
        &["serve", "--data-dir", data_arg, "--bind", "127.0.0.1:0"],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "is in use by another running Sluice (PID {})",
            first.pid()
        )),
        "{stderr}"
    );

    // Admin commands share the running server's cluster instead of failing.
    let (code, stdout, stderr) = run_sluice(&["migrate", "--data-dir", data_arg], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("0 migration(s) applied now, {n} in all")),
        "{stdout}"
    );
    assert!(stderr.contains("using its cluster"), "{stderr}");

    // Graceful stop: the server drains, then the cluster shuts down cleanly.
    first.signal(libc::SIGTERM);
    assert_eq!(first.wait_exit(), Some(0), "{}", first.stderr());
    assert!(first.stderr().contains("embedded PostgreSQL stopped"));
    assert!(!data.join("pgdata/postmaster.pid").exists());

    // With no server running, migrate starts the cluster for itself.
    let (code, stdout, stderr) = run_sluice(&["migrate", "--data-dir", data_arg], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("0 migration(s) applied now, {n} in all")),
        "{stdout}"
    );
    assert!(!stderr.contains("using its cluster"), "{stderr}");
    assert!(!data.join("pgdata/postmaster.pid").exists());
}

#[test]
fn a_crashed_sluice_does_not_leave_postgres_behind_and_restarts() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let serve = || {
        let mut cmd = sluice_command();
        cmd.args(["serve", "--data-dir", data_arg, "--bind", "127.0.0.1:0"]);
        SluiceProcess::spawn(cmd)
    };
    let mut first = serve();
    first.wait_listening();
    let postmaster: u32 = std::fs::read_to_string(data.join("pgdata/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    first.signal(libc::SIGKILL);
    first.wait_exit();
    assert!(
        eventually(Duration::from_secs(30), || !process_alive(postmaster)),
        "the postmaster shuts down when Sluice dies"
    );

    let mut second = serve();
    let addr = second.wait_listening();
    let body = reqwest_blocking_get(&format!("http://{addr}/readyz"));
    assert!(body.contains("\"ready\""), "{body}");
    second.signal(libc::SIGINT);
    assert_eq!(second.wait_exit(), Some(0), "{}", second.stderr());
}

/// A tiny blocking GET over a raw socket (the test is synchronous).
pub fn reqwest_blocking_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// Only a root Sluice switches PostgreSQL to another user, so only then can the path be closed to
/// it; run as another user, this test has nothing to check.
#[test]
fn a_data_directory_postgres_cannot_reach_is_refused_clearly() {
    if !running_as_root() {
        return;
    }
    let dir = temp_dir();
    let closed = dir.path().join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let data = closed.join("data");
    let (code, _, stderr) = run_sluice(
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{} is not traversable", closed.display())),
        "{stderr}"
    );
    assert!(stderr.contains("chmod o+x"), "{stderr}");
    assert!(!data.join("pgdata").exists(), "nothing half-made");
}
