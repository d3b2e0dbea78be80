//! The command line: help, versions, and the clear errors for bad settings (exit code 2).

use std::net::TcpListener;

use crate::harness::{TestDatabase, migration_count, run_sluice};

#[test]
fn help_lists_the_commands_and_every_setting() {
    let (code, stdout, _) = run_sluice(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("serve") && stdout.contains("migrate"),
        "{stdout}"
    );

    let (code, stdout, _) = run_sluice(&["serve", "--help"], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--bind",
        "--data-dir",
        "--database-url",
        "--public-url",
        "--workers",
        "--pg-user",
        "--pg-bin",
        "SLUICE_BIND",
        "SLUICE_DATA_DIR",
        "DATABASE_URL",
        "SLUICE_PUBLIC_URL",
        "SLUICE_WORKERS",
        "SLUICE_PG_BIN",
    ] {
        assert!(
            stdout.contains(flag),
            "serve --help lacks {flag}:\n{stdout}"
        );
    }
    let (code, stdout, _) = run_sluice(&["migrate", "--help"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--data-dir") && stdout.contains("--database-url"));
}

#[test]
fn version_everywhere() {
    for args in [
        &["--version"][..],
        &["serve", "--version"],
        &["migrate", "--version"],
    ] {
        let (code, stdout, _) = run_sluice(args, &[]);
        assert_eq!(code, 0, "{args:?}");
        // clap names subcommands `sluice-serve` etc.
        let line = stdout.trim();
        assert!(line.starts_with("sluice"), "{line}");
        assert!(
            line.ends_with(&format!(" {}", env!("CARGO_PKG_VERSION"))),
            "{line}"
        );
    }
}

#[test]
fn unknown_flags_are_clap_errors() {
    let (code, _, stderr) = run_sluice(&["serve", "--no-such-flag"], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unexpected argument '--no-such-flag'"),
        "{stderr}"
    );
}

#[test]
fn invalid_settings_name_the_setting_and_exit_2() {
    /// Arguments, environment, and the setting the error must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["serve", "--bind", "localhost"], &[], "--bind"),
        (&["serve"], &[("SLUICE_BIND", "1.2.3.4:99999")], "--bind"),
        (&["serve"], &[("SLUICE_WORKERS", "257")], "--workers"),
        (&["serve", "--workers", "many"], &[], "--workers"),
        (&["serve", "--public-url", "ftp://x"], &[], "--public-url"),
        (
            &["serve"],
            &[("DATABASE_URL", "mysql://localhost/x")],
            "--database-url",
        ),
        (
            &["migrate", "--database-url", "::garbage::"],
            &[],
            "--database-url",
        ),
        (
            &["serve", "--max-body-bytes", "12"],
            &[],
            "--max-body-bytes",
        ),
    ];
    for (args, envs, setting) in cases {
        let (code, _, stderr) = run_sluice(args, envs);
        assert_eq!(code, 2, "{args:?} {envs:?}: {stderr}");
        assert!(
            stderr.contains(setting),
            "{args:?} {envs:?} should name {setting}: {stderr}"
        );
    }
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    let (code, _, stderr) = run_sluice(
        &["serve", "--bind", "127.0.0.1:0"],
        &[(
            "DATABASE_URL",
            "postgres://sluice:hunter2hunter2@127.0.0.1:1/sluice",
        )],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "cannot connect to the database at postgres://sluice:****@127.0.0.1:1/sluice"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password never appears: {stderr}"
    );
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let db = TestDatabase::migrated().await;
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let url = db.url();
    let (code, _, stderr) = tokio::task::spawn_blocking(move || {
        run_sluice(&["serve", "--bind", &addr, "--database-url", &url], &[])
    })
    .await
    .unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot listen on 127.0.0.1:"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("address already in use"),
        "{stderr}"
    );
}

#[tokio::test]
async fn migrate_against_an_external_database() {
    let n = migration_count();
    let db = TestDatabase::empty().await;
    let url = db.url();
    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || run_sluice(&["migrate", "--database-url", &url], &[]))
            .await
            .unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "schema up to date: {n} migration(s) applied now, {n} in all"
        )),
        "{stdout}"
    );

    // Running it again changes nothing.
    let url = db.url();
    let (code, stdout, _) =
        tokio::task::spawn_blocking(move || run_sluice(&["migrate", "--database-url", &url], &[]))
            .await
            .unwrap();
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&format!("0 migration(s) applied now, {n} in all")),
        "{stdout}"
    );
}
