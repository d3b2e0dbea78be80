//! The artifact store, local and S3: a real pipeline's artifacts are sealed at rest (no
//! plaintext in any stored object), large ones go up in parts, downloads give the zip back, and
//! an artifact changed in the store fails the action that reads it. The S3 store is tested
//! against moto's S3 server (a real HTTP server speaking S3, started by the test), not a mock
//! of `object_store`.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::executions::{command, first_execution, repository, wait_for_end};
use crate::harness::{ADMIN_PASSWORD, TestApp, api_ok as ok};
use sluice::config::{ArtifactLocation, S3Options};

/// moto's S3 server on a loopback port, one for the whole test run; each test makes its own
/// bucket.
struct Moto {
    endpoint: String,
}

fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (ready, started) = std::sync::mpsc::channel();
        // Started from a thread that lives as long as the test process: the server is killed
        // when that thread ends (PR_SET_PDEATHSIG), so no run leaves one behind.
        std::thread::spawn(move || {
            let mut cmd = Command::new("moto_server");
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            unsafe {
                use std::os::unix::process::CommandExt;
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = cmd.spawn();
            ready.send(child.is_ok()).unwrap();
            if let Ok(mut child) = child {
                let _ = child.wait();
            }
        });
        assert!(
            started.recv().unwrap(),
            "the S3 store tests need moto's S3 server: pip install 'moto[server]' (./scripts/test does)"
        );
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Moto { endpoint };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto_server did not start listening on port {port}");
    })
}

impl Moto {
    /// A new empty bucket.
    async fn bucket(&self) -> String {
        let name = format!("sluice-{}", uuid::Uuid::new_v4().simple());
        let res = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        name
    }

    fn options(&self) -> S3Options {
        S3Options::from_vars(
            [
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
                ("AWS_ALLOW_HTTP", "true"),
                // Not an S3 setting: ignored.
                ("AWS_PAGER", ""),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }
}

/// Where a test reads and changes stored objects behind Sluice's back (the S3 one through its
/// own signed client).
enum Store {
    Local(std::path::PathBuf),
    S3(object_store::aws::AmazonS3),
}

impl Store {
    fn s3(moto: &Moto, bucket: &str) -> Store {
        Store::S3(
            object_store::aws::AmazonS3Builder::new()
                .with_access_key_id("testing")
                .with_secret_access_key("testing")
                .with_region("us-east-1")
                .with_endpoint(&moto.endpoint)
                .with_allow_http(true)
                .with_bucket_name(bucket)
                .build()
                .unwrap(),
        )
    }

    fn key(address: &str) -> String {
        format!("sha256/{}/{}", &address[..2], &address[2..])
    }

    async fn read(&self, address: &str) -> Vec<u8> {
        match self {
            Store::Local(root) => std::fs::read(root.join(Self::key(address))).unwrap(),
            Store::S3(s3) => s3
                .get(&ObjectPath::from(format!(
                    "{PREFIX}/{}",
                    Self::key(address)
                )))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec(),
        }
    }

    async fn write(&self, address: &str, bytes: Vec<u8>) {
        match self {
            Store::Local(root) => std::fs::write(root.join(Self::key(address)), bytes).unwrap(),
            Store::S3(s3) => {
                s3.put(
                    &ObjectPath::from(format!("{PREFIX}/{}", Self::key(address))),
                    PutPayload::from(bytes),
                )
                .await
                .unwrap();
            }
        }
    }

    /// Every key in the bucket.
    async fn keys(&self) -> Vec<String> {
        let Store::S3(s3) = self else { unreachable!() };
        s3.list(None)
            .map(|meta| meta.unwrap().location.to_string())
            .collect()
            .await
    }
}

/// The key prefix the S3 test's server is given.
const PREFIX: &str = "sluice/ci";

async fn admin(app: &TestApp) -> String {
    app.setup_admin().await;
    app.console_token_as(&app.client, ADMIN_PASSWORD, &[]).await
}

/// The address of `artifact` as the newest attempt of `stage` in `execution` produced it.
async fn address_of(c: &mut PgConnection, execution: &str, stage: i32, artifact: &str) -> String {
    let (address,): (String,) = sqlx::query_as(
        "SELECT output_artifacts->$3->>'address' FROM action_executions \
         WHERE execution_id = $1::uuid AND stage_index = $2 ORDER BY attempt DESC LIMIT 1",
    )
    .bind(execution)
    .bind(stage)
    .bind(artifact)
    .fetch_one(c)
    .await
    .unwrap();
    address
}

const MARKER: &[u8] = b"plaintext-marker-4711";

/// Git → a build that makes `Bin` (the marker and `big` random bytes) → a test that reads it.
/// The first execution succeeds with no plaintext at rest and a download that opens; then a
/// second one is held before Test, its `Bin` is changed in the store, and Test fails saying so.
async fn sealed_artifacts_round_trip_and_tampering_fails_the_action(
    app: &TestApp,
    t: &str,
    store: &Store,
    big: usize,
) {
    let repo = tempfile::tempdir().unwrap();
    let (path, _) = repository(repo.path());
    let build_spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - mkdir -p dist\n      - cp app.txt dist/out.txt\n      - head -c {big} /dev/urandom > dist/big.bin\nartifacts:\n  files: ['**/*']\n  base-directory: dist\n"
    );
    let test_spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - grep -q plaintext-marker-4711 out.txt\n      - test $(wc -c < big.bin) -eq {big}\n"
    );
    let decl = json!({"name": "sealed", "stages": [
        {"name": "Source", "actions": [{"name": "Checkout",
            "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
            "configuration": {"RepositoryUrl": path, "Branch": "main"},
            "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Build", "actions": [command("Compile", "Build", &["Src"], Some("Bin"), json!({"BuildSpec": build_spec}))]},
        {"name": "Test", "actions": [command("Check", "Test", &["Bin"], None, json!({"BuildSpec": test_spec}))]}
    ]});
    ok(app, t, "CreatePipeline", json!({"pipeline": decl})).await;
    let first = first_execution(app, t, "sealed").await;
    let mut c = PgConnection::connect_with(&app.db.options).await.unwrap();
    let end = wait_for_end(app, t, "sealed", &first).await;
    let summaries: Vec<(i32, String, Option<String>)> = sqlx::query_as(
        "SELECT stage_index, status, summary FROM action_executions ORDER BY stage_index",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(end["status"], "Succeeded", "{summaries:#?}");

    for (stage, artifact) in [(0, "Src"), (1, "Bin")] {
        let address = address_of(&mut c, &first, stage, artifact).await;
        let at_rest = store.read(&address).await;
        assert!(at_rest.starts_with(b"SLUICEA1"), "{artifact} is sealed");
        assert!(
            !at_rest.windows(MARKER.len()).any(|w| w == MARKER),
            "{artifact} holds no plaintext at rest"
        );
    }

    let zip = reqwest::Client::new()
        .get(app.url(&format!(
            "/api/v1/pipelines/sealed/executions/{first}/artifacts/Bin"
        )))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(zip.status(), 200);
    let bytes = zip.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("out.txt").unwrap(), &mut out).unwrap();
    assert_eq!(out.as_bytes(), [MARKER, b"\n"].concat());
    assert_eq!(archive.by_name("big.bin").unwrap().size(), big as u64);

    // Hold a second execution before Test, change its Bin in the store, let it in.
    ok(
        app,
        t,
        "DisableStageTransition",
        json!({"pipelineName": "sealed", "stageName": "Test", "transitionType": "Inbound", "reason": "hold"}),
    )
    .await;
    let second = ok(app, t, "StartPipelineExecution", json!({"name": "sealed"})).await
        ["pipelineExecutionId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut held = false;
    for _ in 0..400 {
        let state = ok(app, t, "GetPipelineState", json!({"name": "sealed"})).await;
        if state["stageStates"][2]["inboundExecution"]["pipelineExecutionId"] == second.as_str() {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(held, "the second execution waits before Test");
    let address = address_of(&mut c, &second, 1, "Bin").await;
    let mut changed = store.read(&address).await;
    let middle = changed.len() / 2;
    changed[middle] ^= 0x01;
    store.write(&address, changed.clone()).await;
    assert_eq!(
        store.read(&address).await,
        changed,
        "the store holds the change"
    );
    ok(
        app,
        t,
        "EnableStageTransition",
        json!({"pipelineName": "sealed", "stageName": "Test", "transitionType": "Inbound"}),
    )
    .await;
    let end = wait_for_end(app, t, "sealed", &second).await;
    assert_eq!(end["status"], "Failed", "{end}");
    let (summary,): (String,) = sqlx::query_as(
        "SELECT summary FROM action_executions WHERE execution_id = $1::uuid AND stage_index = 2",
    )
    .bind(&second)
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert!(
        summary.contains("the input artifact Bin cannot be read") && summary.contains("altered"),
        "{summary}"
    );
}

#[tokio::test]
async fn local_store_seals_artifacts_and_a_changed_file_fails_the_action() {
    let app = crate::harness::spawn_app_with_workers(2).await;
    let t = admin(&app).await;
    let store = Store::Local(crate::harness::artifact_dir());
    sealed_artifacts_round_trip_and_tampering_fails_the_action(&app, &t, &store, 100_000).await;
}

#[tokio::test]
async fn s3_store_seals_artifacts_uploads_large_ones_in_parts_and_a_changed_object_fails_the_action()
 {
    let moto = moto();
    let bucket = moto.bucket().await;
    let app = crate::harness::spawn_app_with_artifact_store(
        2,
        ArtifactLocation::S3 {
            bucket: bucket.clone(),
            prefix: PREFIX.to_string(),
        },
        moto.options(),
    )
    .await;
    let t = admin(&app).await;
    let store = Store::s3(moto, &bucket);
    // 9 MiB of random bytes: two parts (S3 parts are 8 MiB).
    sealed_artifacts_round_trip_and_tampering_fails_the_action(&app, &t, &store, 9 << 20).await;

    // Everything Sluice stored is under the prefix, under its hash; the large ones went up as
    // multipart uploads (an S3 ETag of a multipart object ends in -<parts>).
    let keys = store.keys().await;
    let Store::S3(s3) = &store else {
        unreachable!()
    };
    let mut multipart = 0;
    for key in &keys {
        let meta = s3.head(&ObjectPath::from(key.as_str())).await.unwrap();
        if meta
            .e_tag
            .unwrap_or_default()
            .trim_matches('"')
            .ends_with("-2")
        {
            multipart += 1;
        }
    }
    // The first execution's Bin; the second's was replaced by the test's single PUT.
    assert_eq!(multipart, 1, "the Bin, in two parts");
    assert!(keys.len() >= 4, "Src and Bin of two executions: {keys:?}");
    for key in &keys {
        let address = key
            .strip_prefix(&format!("{PREFIX}/sha256/"))
            .unwrap_or_else(|| panic!("{key} is not under the prefix"))
            .replace('/', "");
        assert_eq!(
            sluice::artifacts::store::Address::parse(&address).map(|a| a.key()),
            Some(key[PREFIX.len() + 1..].to_string())
        );
    }
}
#[tokio::test]
async fn a_server_whose_s3_bucket_does_not_exist_refuses_to_start_and_says_why() {
    let moto = moto();
    let data = crate::harness::temp_dir();
    let (code, _, err) = crate::harness::run_sluice(
        &[
            "worker",
            "--data-dir",
            data.path().to_str().unwrap(),
            "--artifact-store",
            "s3://no-such-bucket-here/x",
        ],
        &[
            ("DATABASE_URL", "postgres://127.0.0.1:1/none"),
            (
                "SLUICE_MASTER_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing-secret-value"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", &moto.endpoint),
            ("AWS_ALLOW_HTTP", "true"),
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot use s3://no-such-bucket-here/x for artifacts"),
        "{err}"
    );
    assert!(!err.contains("testing-secret-value"), "{err}");
    let (code, _, err) =
        crate::harness::run_sluice(&["worker", "--artifact-store", "s3://Bad_Bucket"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--artifact-store"), "{err}");
}
