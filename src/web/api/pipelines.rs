//! The pipeline operations of the API, in CodePipeline's exact shapes: `{"pipeline": …}` as
//! printed by `aws codepipeline get-pipeline` is accepted by CreatePipeline (its `metadata`
//! ignored).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, epoch, parse};
use crate::error::AppError;
use crate::ops::pipelines;
use crate::ops::{Caller, Page, Services};
use crate::pipeline::wire::PipelineDeclaration;

pub const OPERATIONS: &[&str] = &[
    "CreatePipeline",
    "GetPipeline",
    "UpdatePipeline",
    "DeletePipeline",
    "ListPipelines",
    "ListActionTypes",
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
            if i.tags.as_ref().is_some_and(|t| !t.is_empty()) {
                return Err(AppError::validation(
                    "tags",
                    "tags are not supported yet; leave them out",
                )
                .into());
            }
            let created = pipelines::create_pipeline(s, c, i.pipeline).await?;
            json!({ "pipeline": created, "tags": [] })
        }
        "GetPipeline" => {
            let i: GetPipeline = parse(input)?;
            let (declaration, metadata) = pipelines::get_pipeline(s, c, &i.name, i.version).await?;
            json!({
                "pipeline": declaration,
                "metadata": {
                    "pipelineArn": metadata.pipeline_arn,
                    "created": epoch(metadata.created),
                    "updated": epoch(metadata.updated),
                }
            })
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
    tags: Option<Vec<Value>>,
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
