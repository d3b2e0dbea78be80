//! The documentation's examples are pipelines Sluice accepts as written.

use serde_json::Value;

use crate::harness::{admin_api, api_ok as ok};

/// The bodies of the ```json blocks of a document in `docs/`.
fn json_blocks(doc: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(doc),
    )
    .unwrap();
    let mut blocks = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("```json\n") {
        let body = &rest[start + "```json\n".len()..];
        let end = body.find("\n```").expect("a closed block");
        blocks.push(
            serde_json::from_str(&body[..end])
                .unwrap_or_else(|e| panic!("{doc}: a json block does not parse: {e}")),
        );
        rest = &body[end..];
    }
    blocks
}

#[tokio::test]
async fn every_example_pipeline_of_the_provider_docs_imports_and_reads_back_as_written() {
    let (app, t) = admin_api().await;
    let examples = json_blocks("providers.md");
    assert!(examples.len() >= 3, "the provider docs have their examples");
    for example in examples {
        let created = ok(&app, &t, "CreatePipeline", example.clone()).await;
        let name = example["pipeline"]["name"].as_str().unwrap();
        let read = ok(&app, &t, "GetPipeline", serde_json::json!({"name": name})).await;
        // What the example says comes back as written (CodePipeline adds its defaults:
        // runOrder, empty artifact lists).
        contains(
            &read["pipeline"]["stages"],
            &example["pipeline"]["stages"],
            name,
        );
        contains(
            &created["pipeline"]["stages"],
            &example["pipeline"]["stages"],
            name,
        );
    }
}

/// Every value `expected` has is in `actual`, at the same place.
fn contains(actual: &Value, expected: &Value, at: &str) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (key, value) in e {
                contains(&a[key], value, &format!("{at}.{key}"));
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "{at}");
            for (i, (a, e)) in a.iter().zip(e).enumerate() {
                contains(a, e, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(actual, expected, "{at}"),
    }
}
