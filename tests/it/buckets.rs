//! Upload buckets through the API: names, versions of an object streamed in, sealed at rest,
//! refusals (taken names, empty-only deletes, uploads past the limit, uploads not allowed), and a
//! crowd creating one name.

use serde_json::{Value, json};

use crate::harness::{TestApp, admin_api, api_call, api_ok as ok};

async fn put(app: &TestApp, t: &str, bucket: &str, key: &str, body: Vec<u8>) -> (u16, Value) {
    let res = reqwest::Client::new()
        .put(app.url(&format!("/api/v1/buckets/{bucket}/objects/{key}")))
        .bearer_auth(t)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn objects_are_uploaded_as_versions_sealed_at_rest_and_listed_newest_first() {
    let (app, t) = admin_api().await;
    assert_eq!(
        ok(&app, &t, "CreateBucket", json!({"bucketName": "releases"})).await["bucketName"],
        "releases"
    );
    let (status, taken) =
        api_call(&app, &t, "CreateBucket", json!({"bucketName": "releases"})).await;
    assert_eq!(
        (status, taken["__type"].as_str()),
        (400, Some("BucketAlreadyExists"))
    );
    for bad in ["Releases", "ab", "under_score", "a..b", "10.0.0.1"] {
        let (status, answer) = api_call(&app, &t, "CreateBucket", json!({"bucketName": bad})).await;
        assert_eq!(
            (status, answer["__type"].as_str()),
            (400, Some("ValidationException")),
            "{bad}"
        );
    }

    let marker = b"plaintext-upload-marker-7781".to_vec();
    let mut first = marker.clone();
    first.extend(std::iter::repeat_n(b'x', 300_000));
    let (status, v1) = put(&app, &t, "releases", "site/app.zip", first.clone()).await;
    assert_eq!(status, 200, "{v1}");
    use sha2::Digest;
    let expected: String = sha2::Sha256::digest(&first)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1["eTag"], expected.as_str());
    assert_eq!(v1["size"], first.len());
    let (_, v2) = put(&app, &t, "releases", "site/app.zip", b"second".to_vec()).await;
    let (_, other) = put(&app, &t, "releases", "other.zip", b"other".to_vec()).await;
    assert_ne!(v1["versionId"], v2["versionId"]);

    let listed = ok(
        &app,
        &t,
        "ListObjectVersions",
        json!({"bucketName": "releases", "key": "site/app.zip"}),
    )
    .await;
    let versions = listed["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["versionId"], v2["versionId"], "newest first");
    assert_eq!(versions[1]["versionId"], v1["versionId"]);
    assert_eq!(versions[1]["uploadedBy"], "admin");
    let all = ok(
        &app,
        &t,
        "ListObjectVersions",
        json!({"bucketName": "releases"}),
    )
    .await;
    assert_eq!(all["versions"].as_array().unwrap().len(), 3);
    assert!(
        all["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["versionId"] == other["versionId"])
    );
    let buckets = ok(&app, &t, "ListBuckets", json!({})).await;
    assert_eq!(buckets["buckets"][0]["versions"], 3);

    // Sealed at rest: the bytes are nowhere in the store in the clear.
    let mut found = false;
    for entry in walk(&crate::harness::artifact_dir()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        if bytes.windows(marker.len()).any(|w| w == marker.as_slice()) {
            found = true;
        }
    }
    assert!(!found, "an upload is stored sealed");

    // Empty buckets only are deleted; unknown buckets are said so.
    let (status, full) =
        api_call(&app, &t, "DeleteBucket", json!({"bucketName": "releases"})).await;
    assert_eq!(
        (status, full["__type"].as_str()),
        (400, Some("BucketNotEmpty"))
    );
    ok(
        &app,
        &t,
        "CreateBucket",
        json!({"bucketName": "scratch-space"}),
    )
    .await;
    ok(
        &app,
        &t,
        "DeleteBucket",
        json!({"bucketName": "scratch-space"}),
    )
    .await;
    let (status, gone) = put(&app, &t, "scratch-space", "x", b"x".to_vec()).await;
    assert_eq!(
        (status, gone["__type"].as_str()),
        (400, Some("NoSuchBucket"))
    );
    let (status, bad_key) = put(&app, &t, "releases", "a%0Ab", b"x".to_vec()).await;
    assert_eq!(
        (status, bad_key["__type"].as_str()),
        (400, Some("ValidationException"))
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                pending.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn an_upload_past_the_limit_or_not_allowed_stores_nothing() {
    let (app, t) = admin_api().await;
    ok(&app, &t, "CreateBucket", json!({"bucketName": "limited"})).await;
    // A declared length past the limit is refused before a byte is read.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let request = format!(
        "PUT /api/v1/buckets/limited/objects/big.zip HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Length: {}\r\n\r\n",
        (1u64 << 30) + 1
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = socket.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("EntityTooLarge"), "{answer}");

    // Someone who may list buckets but not upload is refused, and audited once.
    let reader = crate::harness::user_with_policy(
        &app,
        &t,
        "lister",
        Some(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["sluice:ListBuckets", "sluice:ListObjectVersions"], "Resource": "*"}]}),
        ),
    )
    .await;
    let (status, denied) = put(&app, &reader, "limited", "x.zip", b"data".to_vec()).await;
    assert_eq!(
        (status, denied["__type"].as_str()),
        (400, Some("AccessDeniedException"))
    );
    let listed = ok(
        &app,
        &reader,
        "ListObjectVersions",
        json!({"bucketName": "limited"}),
    )
    .await;
    assert!(
        listed["versions"].as_array().unwrap().is_empty(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn a_crowd_creating_one_bucket_makes_exactly_one() {
    let (app, t) = admin_api().await;
    let asks =
        (0..16).map(|_| api_call(&app, &t, "CreateBucket", json!({"bucketName": "crowded"})));
    let answers = futures_util::future::join_all(asks).await;
    assert_eq!(
        answers.iter().filter(|(s, _)| *s == 200).count(),
        1,
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(_, a)| a["__type"] == "BucketAlreadyExists")
    );
    assert_eq!(
        ok(&app, &t, "ListBuckets", json!({})).await["buckets"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// A zip holding `app.txt` with `text`.
fn zip_of(text: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.txt"), text).unwrap();
    let mut out = tempfile::tempfile().unwrap();
    sluice::artifacts::archive::zip_directory(dir.path(), &mut out, 1 << 20).unwrap();
    use std::io::{Read, Seek};
    out.rewind().unwrap();
    let mut bytes = Vec::new();
    out.read_to_end(&mut bytes).unwrap();
    bytes
}

#[tokio::test]
async fn a_new_version_starts_the_pipelines_watching_its_key_with_that_version() {
    let (app, t) = crate::executions::workers_app().await;
    ok(&app, &t, "CreateBucket", json!({"bucketName": "drops"})).await;
    let pipeline = |name: &str, key: &str| {
        json!({"pipeline": {"name": name, "stages": [
            {"name": "Source", "actions": [{"name": "Drop", "namespace": "Drop",
                "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Upload", "version": "1"},
                "configuration": {"Bucket": "drops", "ObjectKey": key},
                "outputArtifacts": [{"name": "Site"}]}]},
            {"name": "Build", "actions": [{"name": "Show",
                "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
                "configuration": {"BuildSpec": "version: 0.2\nphases:\n  build:\n    commands:\n      - cat app.txt\n      - echo version #{Drop.VersionId}\n"},
                "inputArtifacts": [{"name": "Site"}]}]}]}})
    };
    ok(&app, &t, "CreatePipeline", pipeline("watcher", "site.zip")).await;
    ok(
        &app,
        &t,
        "CreatePipeline",
        pipeline("other-key", "else.zip"),
    )
    .await;
    // Their first runs find no version yet and say so.
    let first = crate::executions::first_execution(&app, &t, "watcher").await;
    assert_eq!(
        crate::executions::wait_for_end(&app, &t, "watcher", &first).await["status"],
        "Failed"
    );

    let (status, v1) = put(&app, &t, "drops", "site.zip", zip_of("upload one")).await;
    assert_eq!(status, 200, "{v1}");
    let (_, v2) = put(&app, &t, "drops", "site.zip", zip_of("upload two")).await;
    let list = ok(
        &app,
        &t,
        "ListPipelineExecutions",
        json!({"pipelineName": "watcher"}),
    )
    .await;
    let summaries = list["pipelineExecutionSummaries"].as_array().unwrap();
    assert_eq!(summaries.len(), 3, "one execution per version: {list}");
    assert_eq!(summaries[0]["trigger"]["triggerType"], "PutActionRevision");
    assert!(
        summaries[0]["trigger"]["triggerDetail"]
            .as_str()
            .unwrap()
            .contains("admin uploaded drops/site.zip")
    );
    // Each run builds its own version, even when a newer one exists by the time it runs.
    for (summary, version, text) in [
        (&summaries[1], &v1, "upload one"),
        (&summaries[0], &v2, "upload two"),
    ] {
        let id = summary["pipelineExecutionId"].as_str().unwrap();
        crate::executions::wait_for_end(&app, &t, "watcher", id).await;
        let attempts = ok(
            &app,
            &t,
            "ListActionExecutions",
            json!({"pipelineName": "watcher", "filter": {"pipelineExecutionId": id}}),
        )
        .await;
        let details = attempts["actionExecutionDetails"].as_array().unwrap();
        let source = details.iter().find(|d| d["actionName"] == "Drop").unwrap();
        assert_eq!(source["status"], "Succeeded", "{source}");
        assert_eq!(
            source["output"]["outputVariables"]["VersionId"],
            version["versionId"]
        );
        assert_eq!(source["output"]["outputVariables"]["ETag"], version["eTag"]);
        let build = details.iter().find(|d| d["actionName"] == "Show").unwrap();
        let log = ok(
            &app,
            &t,
            "GetActionExecutionLog",
            json!({"pipelineName": "watcher", "actionExecutionId": build["actionExecutionId"]}),
        )
        .await;
        let text_seen = log.to_string();
        assert!(text_seen.contains(text), "{text_seen}");
        assert!(text_seen.contains(&format!(
            "version {}",
            version["versionId"].as_str().unwrap()
        )));
    }
    // The pipeline watching another key did not start again.
    let others = ok(
        &app,
        &t,
        "ListPipelineExecutions",
        json!({"pipelineName": "other-key"}),
    )
    .await;
    assert_eq!(
        others["pipelineExecutionSummaries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
