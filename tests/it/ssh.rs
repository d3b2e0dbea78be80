//! SSH key connections: a Git source clones over SSH from a real OpenSSH server the test starts
//! (on a random port, trusting one generated client key), authenticating with the connection's
//! key only and accepting only the host keys it lists; the private key shows nowhere. Skipped,
//! saying so, where this machine has no sshd (`./scripts/test` installs it when it can).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::connections::{private_source, source_summary};
use crate::executions::{commit, first_execution, repository, wait_for_end, workers_app};
use crate::harness::{api_call as call, api_ok as ok};

const SSHD: &str = "/usr/sbin/sshd";

/// A key pair made with ssh-keygen: the private key's text and the public key's line.
struct KeyPair {
    private: String,
    public: String,
}

fn key_pair(dir: &Path, name: &str, passphrase: &str) -> KeyPair {
    let path = dir.join(name);
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen runs");
    assert!(made.success());
    KeyPair {
        private: std::fs::read_to_string(&path).unwrap(),
        public: std::fs::read_to_string(path.with_extension("pub")).unwrap(),
    }
}

impl KeyPair {
    /// The public key without its comment (`type base64`), as a known_hosts line or an
    /// authorized key names it.
    fn key(&self) -> String {
        self.public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// An OpenSSH server on 127.0.0.1 that lets `user` in with `client`'s key and serves the
/// bare repository `app.git` in its directory.
struct SshServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    user: String,
    commit: String,
    /// Its host key, as a known_hosts line for this port.
    known_hosts: String,
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SshServer {
    fn url(&self) -> String {
        format!(
            "ssh://127.0.0.1:{}{}",
            self.port,
            self.repository().display()
        )
    }

    fn repository(&self) -> PathBuf {
        self.dir.path().join("app.git")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

fn ssh_server(client: &KeyPair) -> Option<SshServer> {
    if !Path::new(SSHD).exists() {
        eprintln!("skipped: no {SSHD} on this machine (apt-get install openssh-server)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (source, commit) = repository(work.path());
    let bare = Command::new("git")
        .args(["clone", "--quiet", "--bare", &source])
        .arg(dir.path().join("app.git"))
        .status()
        .unwrap();
    assert!(bare.success());
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        // sshd running as root wants its privilege separation directory (made at boot where
        // a service manager runs it).
        std::fs::create_dir_all("/run/sshd").unwrap();
    }
    let host_key = key_pair(dir.path(), "host_key", "");
    std::fs::write(dir.path().join("authorized_keys"), &client.public).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nPidFile none\nLogLevel VERBOSE\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("sshd.log")).unwrap();
    let mut cmd = Command::new(SSHD);
    cmd.arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(dir.path().join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd.spawn().expect("sshd starts");
    let server = SshServer {
        child,
        port,
        user,
        commit,
        known_hosts: format!("[127.0.0.1]:{port} {}", host_key.key()),
        dir,
    };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sshd did not listen: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(server)
}

/// Starts `name` again and waits for it to end; the source action's status and summary.
async fn run(app: &crate::harness::TestApp, t: &str, name: &str) -> (String, String) {
    let id =
        ok(app, t, "StartPipelineExecution", json!({"name": name})).await["pipelineExecutionId"]
            .as_str()
            .unwrap()
            .to_string();
    wait_for_end(app, t, name, &id).await;
    let (status, summary, _) = source_summary(app, &id).await;
    (status, summary.unwrap_or_default())
}

async fn page(app: &crate::harness::TestApp, client: &reqwest::Client, path: &str) -> String {
    let response = client.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

const ARN: &str = "arn:sluice:codeconnections:::connection/Deploy-Key";

#[tokio::test]
async fn a_repository_is_cloned_over_ssh_with_a_connections_key_and_only_a_listed_host_key() {
    let keys = tempfile::tempdir().unwrap();
    let client = key_pair(keys.path(), "client", "");
    let Some(server) = ssh_server(&client) else {
        return;
    };
    let (app, t) = workers_app().await;
    let created = ok(
        &app,
        &t,
        "CreateConnection",
        json!({"ConnectionName": "Deploy-Key", "ProviderType": "Gitea", "Username": server.user,
               "PrivateKey": client.private, "KnownHosts": server.known_hosts,
               "Host": format!("127.0.0.1:{}", server.port)}),
    )
    .await;
    assert_eq!(created["ConnectionArn"], ARN);
    let got =
        ok(&app, &t, "GetConnection", json!({"ConnectionArn": ARN})).await["Connection"].clone();
    assert_eq!(got["AuthType"], "SshKey");
    assert!(
        got["PublicKey"]
            .as_str()
            .unwrap()
            .starts_with(&client.key()),
        "{got}"
    );
    let fingerprint = String::from_utf8(
        Command::new("ssh-keygen")
            .args(["-l", "-f"])
            .arg(keys.path().join("client.pub"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        fingerprint.contains(got["PublicKeyFingerprint"].as_str().unwrap()),
        "{got} / {fingerprint}"
    );
    assert_eq!(got["KnownHosts"], format!("{}\n", server.known_hosts));

    // Named in another case: the same connection. The build sees none of the SSH variables.
    let decl = private_source("over-ssh", &server.url(), Some("deploy-key"));
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    let id = first_execution(&app, &t, "over-ssh").await;
    let end = wait_for_end(&app, &t, "over-ssh", &id).await;
    let (status, summary, variables) = source_summary(&app, &id).await;
    assert_eq!(status, "Succeeded", "{summary:?} / {}", server.log());
    assert_eq!(end["status"], "Succeeded", "{end}");
    assert_eq!(variables["CommitId"], server.commit.as_str());
    assert!(
        server.log().contains("Accepted publickey"),
        "{}",
        server.log()
    );

    // The private key is nowhere in the database in the clear, nor in what the API shows.
    let secret_line = client.private.lines().nth(1).unwrap().to_string();
    let tables = [
        "connections",
        "action_logs",
        "action_executions",
        "pipeline_versions",
        "audit_events",
        "jobs",
    ];
    assert_eq!(
        app.tables_holding(&tables, &secret_line).await,
        Vec::<String>::new(),
        "these hold the private key"
    );
    let listed = ok(&app, &t, "ListConnections", json!({})).await;
    assert!(!listed.to_string().contains(&secret_line));

    // A server presenting a key the connection does not list: refused at once, no prompt.
    let stranger = key_pair(keys.path(), "stranger", "");
    let stranger_line = format!("[127.0.0.1]:{} {}", server.port, stranger.key());
    ok(
        &app,
        &t,
        "UpdateConnection",
        json!({"ConnectionArn": ARN, "KnownHosts": stranger_line}),
    )
    .await;
    let started = Instant::now();
    let (status, summary) = run(&app, &t, "over-ssh").await;
    assert_eq!(status, "Failed");
    assert!(
        summary.contains("git clone of") && summary.contains("Host key verification failed"),
        "{summary}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let log = ok(
        &app,
        &t,
        "ListActionExecutions",
        json!({"pipelineName": "over-ssh"}),
    )
    .await;
    assert!(!log.to_string().contains(&secret_line));

    // The right host keys again; the key itself was kept byte for byte.
    ok(
        &app,
        &t,
        "UpdateConnection",
        json!({"ConnectionArn": ARN, "KnownHosts": server.known_hosts}),
    )
    .await;
    assert_eq!(run(&app, &t, "over-ssh").await.0, "Succeeded");

    // Another key, which the server does not trust: the clone fails, the public key shown
    // is the new one.
    let other = key_pair(keys.path(), "other", "");
    let updated = ok(
        &app,
        &t,
        "UpdateConnection",
        json!({"ConnectionArn": ARN, "PrivateKey": other.private}),
    )
    .await;
    assert!(
        updated["Connection"]["PublicKey"]
            .as_str()
            .unwrap()
            .starts_with(&other.key()),
        "{updated}"
    );
    let (status, summary) = run(&app, &t, "over-ssh").await;
    assert_eq!(status, "Failed");
    assert!(
        summary.contains("Permission denied (publickey)"),
        "{summary}"
    );
    assert!(
        server.log().contains("Failed publickey") || server.log().contains("Connection closed"),
        "{}",
        server.log()
    );

    // The credentials go to the bound host only, and over SSH only.
    ok(
        &app,
        &t,
        "UpdateConnection",
        json!({"ConnectionArn": ARN, "PrivateKey": client.private}),
    )
    .await;
    for (name, url, why) in [
        (
            "elsewhere",
            "ssh://git@127.0.0.2:22/app.git".to_string(),
            "only",
        ),
        ("https", "https://127.0.0.1/app.git".to_string(), "over SSH"),
    ] {
        let mut decl = private_source(name, &url, Some("Deploy-Key"));
        if name == "elsewhere" {
            decl["stages"][0]["actions"][0]["configuration"]["RepositoryUrl"] =
                json!(format!("ssh://{}@127.0.0.2/app.git", server.user));
        }
        ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
        let id = first_execution(&app, &t, name).await;
        wait_for_end(&app, &t, name, &id).await;
        let summary = source_summary(&app, &id).await.1.unwrap();
        assert!(summary.contains(why), "{name}: {summary}");
    }
    assert_eq!(run(&app, &t, "over-ssh").await.0, "Succeeded");

    // Polling lists the branch over SSH with the same key and host keys: a push starts it.
    let mut decl = private_source("polled-ssh", &server.url(), Some("Deploy-Key"));
    decl["stages"][0]["actions"][0]["configuration"]["PollForSourceChanges"] = json!("true");
    ok(&app, &t, "CreatePipeline", json!({"pipeline": decl})).await;
    let first = first_execution(&app, &t, "polled-ssh").await;
    wait_for_end(&app, &t, "polled-ssh", &first).await;
    let checkout = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(checkout.path())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&[
        "clone",
        "--quiet",
        server.repository().to_str().unwrap(),
        ".",
    ]);
    let pushed = commit(checkout.path(), "app.txt", "plaintext-marker-4711 pushed");
    git(&["push", "--quiet", "origin", "HEAD:main"]);
    let started = Instant::now();
    let polled = loop {
        let listed = ok(
            &app,
            &t,
            "ListPipelineExecutions",
            json!({"pipelineName": "polled-ssh"}),
        )
        .await;
        let all = listed["pipelineExecutionSummaries"]
            .as_array()
            .unwrap()
            .clone();
        if all.len() > 1 {
            break all[0].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "polling over SSH started nothing: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        polled["trigger"]["triggerType"], "PollForSourceChanges",
        "{polled}"
    );
    let id = polled["pipelineExecutionId"].as_str().unwrap();
    wait_for_end(&app, &t, "polled-ssh", id).await;
    let (status, summary, variables) = source_summary(&app, id).await;
    assert_eq!(status, "Succeeded", "{summary:?}");
    assert_eq!(variables["CommitId"], pushed.as_str());
}

#[tokio::test]
async fn what_is_not_an_ssh_key_connection_is_refused_with_a_clear_error_and_nothing_stored() {
    let keys = tempfile::tempdir().unwrap();
    let good = key_pair(keys.path(), "good", "");
    let locked = key_pair(keys.path(), "locked", "a passphrase");
    let (app, t) = crate::harness::admin_api().await;
    let hosts = "git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIq/JAxa1AeuJLSGRtxL2RmINdzr0xzrQHVbOuMv5lEh";
    let junk_key =
        "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWp1bms=\n-----END OPENSSH PRIVATE KEY-----";
    for (body, field, says) in [
        (
            json!({"PrivateKey": junk_key, "KnownHosts": hosts}),
            "PrivateKey",
            "not a private key",
        ),
        (
            json!({"PrivateKey": locked.private, "KnownHosts": hosts}),
            "PrivateKey",
            "passphrase",
        ),
        (
            json!({"PrivateKey": good.public, "KnownHosts": hosts}),
            "PrivateKey",
            "private key",
        ),
        (
            json!({"PrivateKey": good.private}),
            "KnownHosts",
            "host keys",
        ),
        (
            json!({"PrivateKey": good.private, "KnownHosts": "ssh-ed25519 AAAA"}),
            "KnownHosts",
            "line 1",
        ),
        (
            json!({"PrivateKey": good.private, "KnownHosts": hosts, "Token": "t"}),
            "Token",
            "one of them",
        ),
        (json!({}), "Token", "one of them"),
        (
            json!({"PrivateKey": good.private, "KnownHosts": hosts, "CaCertificate": "x"}),
            "CaCertificate",
            "KnownHosts",
        ),
        (
            json!({"Token": "t", "KnownHosts": hosts}),
            "KnownHosts",
            "PrivateKey",
        ),
    ] {
        let mut body = body;
        body["ConnectionName"] = json!("k");
        body["Username"] = json!("git");
        let (status, out) = call(&app, &t, "CreateConnection", body.clone()).await;
        assert_eq!(status, 400, "{body}: {out}");
        let message = out["message"].as_str().unwrap();
        assert!(
            message.contains(field) && message.contains(says),
            "{field}: {out}"
        );
        assert!(
            !message.contains("c2VjcmV0") && !message.contains("AAAAC3Nza"),
            "{out}"
        );
    }
    assert_eq!(
        ok(&app, &t, "ListConnections", json!({})).await["Connections"],
        json!([])
    );

    // A stored one: a token is not what it takes, and a change needs something to change.
    ok(
        &app,
        &t,
        "CreateConnection",
        json!({"ConnectionName": "k", "Username": "git", "PrivateKey": good.private, "KnownHosts": hosts}),
    )
    .await;
    let arn = "arn:sluice:codeconnections:::connection/k";
    for (body, says) in [
        (json!({"Token": "t"}), "SSH key"),
        (json!({}), "PrivateKey"),
        (json!({"KnownHosts": "nonsense"}), "KnownHosts"),
    ] {
        let mut body = body;
        body["ConnectionArn"] = json!(arn);
        let (status, out) = call(&app, &t, "UpdateConnection", body.clone()).await;
        assert_eq!(status, 400, "{body}: {out}");
        assert!(out["message"].as_str().unwrap().contains(says), "{out}");
    }
    ok(
        &app,
        &t,
        "CreateConnection",
        json!({"ConnectionName": "tok", "Username": "bot", "Token": "t"}),
    )
    .await;
    let (status, out) = call(
        &app,
        &t,
        "UpdateConnection",
        json!({"ConnectionArn": "arn:sluice:codeconnections:::connection/tok", "PrivateKey": good.private}),
    )
    .await;
    assert_eq!(status, 400, "{out}");
    assert!(out["message"].as_str().unwrap().contains("token"), "{out}");
    let got = ok(&app, &t, "GetConnection", json!({"ConnectionArn": arn})).await;
    assert_eq!(
        got["Connection"]["KnownHosts"],
        format!("{hosts}\n"),
        "nothing changed"
    );
}

#[tokio::test]
async fn an_ssh_key_connection_is_stored_from_the_console_and_shows_its_public_key_only() {
    let keys = tempfile::tempdir().unwrap();
    let pair = key_pair(keys.path(), "console", "");
    let (app, _t) = crate::harness::admin_api().await;
    let admin = app.sign_in("admin", crate::harness::ADMIN_PASSWORD).await;
    let hosts = "git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIq/JAxa1AeuJLSGRtxL2RmINdzr0xzrQHVbOuMv5lEh";
    // As a browser posts a textarea: CRLF line ends. A token typed before switching to SSH
    // (now hidden) does not count.
    let pasted = pair.private.replace('\n', "\r\n");
    let made = app
        .post_form(
            &admin,
            "/admin/connections",
            &[
                ("name", "Forge-SSH"),
                ("provider_type", "Forgejo"),
                ("username", "git"),
                ("auth_type", "SshKey"),
                ("token", "typed-then-abandoned"),
                ("private_key", &pasted),
                ("known_hosts", hosts),
                ("ca_certificate", ""),
                ("host", ""),
            ],
        )
        .await;
    assert_eq!(made.status(), 303);
    let html = page(&app, &admin, "/admin/connections").await;
    let public: Vec<&str> = pair.public.split_whitespace().take(2).collect();
    assert!(
        html.contains(public[1]) && html.contains("SHA256:"),
        "{html}"
    );
    let secret_line = pair.private.lines().nth(1).unwrap();
    assert!(!html.contains(secret_line));

    // Junk: refused beside the form, the known hosts kept, the key not sent back.
    let refused = app
        .post_form(
            &admin,
            "/admin/connections",
            &[
                ("name", "second"),
                ("provider_type", "Git"),
                ("username", "git"),
                ("auth_type", "SshKey"),
                ("private_key", "not a key at all"),
                ("known_hosts", hosts),
            ],
        )
        .await;
    assert_eq!(refused.status(), 400);
    let html = refused.text().await.unwrap();
    assert!(
        html.contains("PrivateKey") && html.contains("AAAAC3Nza"),
        "{html}"
    );
    assert!(!html.contains("not a key at all"));
    let checked = &html[html.find(r#"id="c-auth-SshKey""#).unwrap()..];
    assert!(checked[..checked.find('>').unwrap()].contains("checked"));

    // Replacing only the host keys keeps the key: the same public key is shown.
    let replaced = app
        .post_form(
            &admin,
            "/admin/connections/Forge-SSH/token",
            &[
                ("private_key", ""),
                ("known_hosts", &format!("{hosts}\nother.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIq/JAxa1AeuJLSGRtxL2RmINdzr0xzrQHVbOuMv5lEh")),
            ],
        )
        .await;
    assert_eq!(replaced.status(), 303);
    let html = page(&app, &admin, "/admin/connections").await;
    assert!(
        html.contains(public[1]) && html.contains("other.example.com"),
        "{html}"
    );
    let audit = page(&app, &admin, "/admin/audit").await;
    assert!(!audit.contains(secret_line));
}
