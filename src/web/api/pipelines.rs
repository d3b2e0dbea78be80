//! The pipeline operations of the API, in CodePipeline's exact shapes: `{"pipeline": …}` as
//! printed by `aws codepipeline get-pipeline` is accepted by CreatePipeline (its `metadata`
//! ignored).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, epoch, parse};
use crate::ops::pipelines;
use crate::ops::tags::{self, Tag};
use crate::ops::{Caller, Page, Services};
use crate::pipeline::wire::PipelineDeclaration;

pub const OPERATIONS: &[&str] = &[
    "CreatePipeline",
    "GetPipeline",
    "UpdatePipeline",
    "DeletePipeline",
    "ListPipelines",
    "ListActionTypes",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

pub async fn call(
    s: &Services,
    c: &Caller,
    operation: &str,
    input: Value,
) -> Result<Value, ApiError> {
    Ok(match operation {
        "CreatePipeline" => {
            let i: CreatePipeline = parse(input)?;
            let tags = i.tags.unwrap_or_default();
            let created = pipelines::create_pipeline(s, c, i.pipeline, tags.clone()).await?;
            json!({ "pipeline": created, "tags": tags })
        }
        "GetPipeline" => {
            let i: GetPipeline = parse(input)?;
            let (declaration, metadata) = pipelines::get_pipeline(s, c, &i.name, i.version).await?;
            json!({ "pipeline": declaration, "metadata": metadata.wire() })
        }
        "UpdatePipeline" => {
            let i: UpdatePipeline = parse(input)?;
            // A declaration equal to the current version stores nothing and returns the current one.
            let updated = pipelines::update_pipeline(s, c, i.pipeline)
                .await?
                .declaration();
            json!({ "pipeline": updated })
        }
        "DeletePipeline" => {
            let i: Named = parse(input)?;
            pipelines::delete_pipeline(s, c, &i.name).await?;
            json!({})
        }
        "ListPipelines" => {
            let i: ListPipelines = parse(input)?;
            let page = pipelines::list_pipelines(
                s,
                c,
                &Page {
                    next: i.next_token,
                    max: i.max_results,
                },
            )
            .await?;
            json!({
                "pipelines": page.items.iter().map(|p| json!({
                    "name": p.name,
                    "version": p.version,
                    "pipelineType": p.pipeline_type,
                    "executionMode": p.execution_mode,
                    "created": epoch(p.created),
                    "updated": epoch(p.updated),
                })).collect::<Vec<_>>(),
                "nextToken": page.next,
            })
        }
        "TagResource" => {
            let i: TagResource = parse(input)?;
            tags::tag_resource(s, c, &i.resource_arn, i.tags).await?;
            json!({})
        }
        "UntagResource" => {
            let i: UntagResource = parse(input)?;
            tags::untag_resource(s, c, &i.resource_arn, i.tag_keys).await?;
            json!({})
        }
        "ListTagsForResource" => {
            let i: ListTagsForResource = parse(input)?;
            // A pipeline has at most 50 tags: one page, whatever maxResults says.
            let _ = (i.next_token, i.max_results);
            json!({ "tags": tags::list_tags_for_resource(s, c, &i.resource_arn).await? })
        }
        "ListActionTypes" => {
            let i: ListActionTypes = parse(input)?;
            let types = pipelines::list_action_types(s, c).await?;
            json!({
                "actionTypes": types.iter()
                    .filter(|t| i.action_owner_filter.as_deref().is_none_or(|o| o == t.owner))
                    .map(|t| json!({
                        "id": {"category": t.category, "owner": t.owner, "provider": t.provider, "version": t.version},
                        "settings": {},
                        "actionConfigurationProperties": t.properties.iter().map(|p| json!({
                            "name": p.name,
                            "required": p.required,
                            "key": false,
                            "secret": p.secret(),
                            "queryable": false,
                            "description": p.description,
                            "type": "String",
                        })).collect::<Vec<_>>(),
                        "inputArtifactDetails": {"minimumCount": t.inputs.0, "maximumCount": t.inputs.1},
                        "outputArtifactDetails": {"minimumCount": t.outputs.0, "maximumCount": t.outputs.1},
                    }))
                    .collect::<Vec<_>>(),
            })
        }
        other => {
            return Err(ApiError::new(
                actix_web::http::StatusCode::BAD_REQUEST,
                "UnknownOperationException",
                format!("{other} is not an operation of this API"),
            ));
        }
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreatePipeline {
    pipeline: PipelineDeclaration,
    tags: Option<Vec<Tag>>,
    /// What `get-pipeline` prints beside the declaration; ignored.
    #[serde(rename = "metadata")]
    _metadata: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GetPipeline {
    name: String,
    version: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdatePipeline {
    pipeline: PipelineDeclaration,
    #[serde(rename = "metadata")]
    _metadata: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListPipelines {
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListActionTypes {
    action_owner_filter: Option<String>,
    /// One page holds every built-in type, so the token is never needed.
    #[serde(rename = "nextToken")]
    _next_token: Option<String>,
    #[serde(rename = "regionFilter")]
    _region_filter: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TagResource {
    resource_arn: String,
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UntagResource {
    resource_arn: String,
    tag_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListTagsForResource {
    resource_arn: String,
    next_token: Option<String>,
    max_results: Option<i64>,
}
