//! Pipeline tags: CodePipeline's TagResource, UntagResource and ListTagsForResource, and the tags
//! CreatePipeline takes. Tags are key/value labels; they never affect what a pipeline does.

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{Caller, Kind, Op, Services};
use crate::access::{Action, Resource};
use crate::db;
use crate::error::AppError;

/// CodePipeline's limit of tags per resource.
pub const MAX_TAGS: usize = 50;

/// One tag, in CodePipeline's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

fn invalid(message: String) -> AppError {
    AppError::Rejected {
        code: "InvalidTagsException",
        message,
    }
}

fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)
}

/// A tag key: 1-128 characters of letters, digits, spaces and `_ . : / = + - @`, not `aws:…`.
fn check_key(key: &str) -> Result<(), AppError> {
    let n = key.chars().count();
    if !(1..=128).contains(&n) || !key.chars().all(allowed) {
        return Err(invalid(
            "a tag key is 1-128 characters of letters, digits, spaces and _ . : / = + - @".into(),
        ));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(invalid("tag keys starting with aws: are reserved".into()));
    }
    Ok(())
}

/// Checks tags as sent: keys and values well formed, each key once, at most [`MAX_TAGS`].
pub fn check_tags(tags: &[Tag]) -> Result<(), AppError> {
    let mut seen = std::collections::HashSet::new();
    for tag in tags {
        check_key(&tag.key)?;
        if tag.value.chars().count() > 256 || !tag.value.chars().all(allowed) {
            return Err(invalid(format!(
                "the value of the tag {} must be at most 256 characters of letters, digits, spaces and _ . : / = + - @",
                tag.key
            )));
        }
        if !seen.insert(tag.key.as_str()) {
            return Err(invalid(format!("the tag key {} is given twice", tag.key)));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(too_many());
    }
    Ok(())
}

fn too_many() -> AppError {
    AppError::Rejected {
        code: "TooManyTagsException",
        message: format!("a pipeline has at most {MAX_TAGS} tags"),
    }
}

/// The pipeline a resource ARN names (`arn:sluice:codepipeline:::NAME`; an AWS-style ARN's
/// partition, region and account are ignored).
fn pipeline_named_by(arn: &str) -> Result<String, AppError> {
    let invalid_arn = || AppError::Rejected {
        code: "InvalidArnException",
        message: "resourceArn must be a pipeline's ARN: arn:sluice:codepipeline:::NAME".into(),
    };
    match Resource::parse(arn).map_err(|_| invalid_arn())? {
        Resource::Arn(a)
            if a.service() == crate::access::Service::CodePipeline
                && !a.resource().contains('/') =>
        {
            let name = a.resource();
            super::pipelines::existing_name(name).map_err(|_| invalid_arn())?;
            Ok(name.to_string())
        }
        _ => Err(invalid_arn()),
    }
}

/// The pipeline an ARN names, and the resource to authorize. An ARN that names no pipeline is
/// authorized as sent (so a caller who may not tag anything learns only that) and then refused,
/// audited either way.
fn target_of(arn: &str) -> (Result<String, AppError>, Resource) {
    let target = pipeline_named_by(arn);
    let resource = Resource::pipeline(target.as_deref().unwrap_or(arn));
    (target, resource)
}

fn not_found(name: &str) -> AppError {
    AppError::NotFound {
        code: "ResourceNotFoundException",
        message: format!("Sluice does not have a pipeline with name '{name}'"),
    }
}

/// Stores tags on a new pipeline, inside its creation's transaction.
pub(super) async fn put_new(
    conn: &mut sqlx::PgConnection,
    pipeline_id: Uuid,
    tags: &[Tag],
) -> Result<(), AppError> {
    let pairs: Vec<(String, String)> = tags
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    db::pipelines::put_tags(conn, pipeline_id, &pairs).await?;
    Ok(())
}

fn to_tags(pairs: Vec<(String, String)>) -> Vec<Tag> {
    pairs
        .into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect()
}

/// Adds tags to a pipeline, or sets the values of keys it has.
pub async fn tag_resource(
    s: &Services,
    c: &Caller,
    arn: &str,
    tags: Vec<Tag>,
) -> Result<(), AppError> {
    let (target, resource) = target_of(arn);
    Op::run(
        s,
        c,
        Kind::Change,
        Action::TagResource,
        resource,
        json!({"resourceArn": arn, "tags": tags}),
        async |op| {
            let name = target?;
            check_tags(&tags)?;
            let row = db::pipelines::find_for_update(op.conn(), &name)
                .await?
                .ok_or_else(|| not_found(&name))?;
            let pairs: Vec<(String, String)> = tags.into_iter().map(|t| (t.key, t.value)).collect();
            db::pipelines::put_tags(op.conn(), row.id, &pairs).await?;
            if db::pipelines::tags(op.conn(), row.id).await?.len() > MAX_TAGS {
                return Err(too_many());
            }
            Ok(())
        },
    )
    .await
}

/// Removes tags from a pipeline by key.
pub async fn untag_resource(
    s: &Services,
    c: &Caller,
    arn: &str,
    keys: Vec<String>,
) -> Result<(), AppError> {
    let (target, resource) = target_of(arn);
    Op::run(
        s,
        c,
        Kind::Change,
        Action::UntagResource,
        resource,
        json!({"resourceArn": arn, "tagKeys": keys}),
        async |op| {
            let name = target?;
            for key in &keys {
                check_key(key)?;
            }
            let row = db::pipelines::find_for_update(op.conn(), &name)
                .await?
                .ok_or_else(|| not_found(&name))?;
            db::pipelines::remove_tags(op.conn(), row.id, &keys).await?;
            Ok(())
        },
    )
    .await
}

/// A pipeline's tags, by key (one page: a pipeline has at most [`MAX_TAGS`]).
pub async fn list_tags_for_resource(
    s: &Services,
    c: &Caller,
    arn: &str,
) -> Result<Vec<Tag>, AppError> {
    let (target, resource) = target_of(arn);
    Op::run(
        s,
        c,
        Kind::Read,
        Action::ListTagsForResource,
        resource,
        json!({"resourceArn": arn}),
        async |op| {
            let name = target?;
            let row = db::pipelines::find(op.conn(), &name)
                .await?
                .ok_or_else(|| not_found(&name))?;
            Ok(to_tags(db::pipelines::tags(op.conn(), row.id).await?))
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: &str) -> Tag {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn tags_follow_codepipelines_rules() {
        assert!(
            check_tags(&[
                tag("team", "web"),
                tag("cost centre", ""),
                tag("a:b/c=d+e-f@g", "ß")
            ])
            .is_ok()
        );
        for bad in [
            vec![tag("", "x")],
            vec![tag(&"k".repeat(129), "x")],
            vec![tag("k", &"v".repeat(257))],
            vec![tag("aws:created", "x")],
            vec![tag("AWS:x", "x")],
            vec![tag("semi;colon", "x")],
            vec![tag("k", "x"), tag("k", "y")],
        ] {
            assert_eq!(
                check_tags(&bad).unwrap_err().code(),
                "InvalidTagsException",
                "{bad:?}"
            );
        }
        let many: Vec<Tag> = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert_eq!(
            check_tags(&many).unwrap_err().code(),
            "TooManyTagsException"
        );
        assert!(check_tags(&many[..50]).is_ok());
    }

    #[test]
    fn the_resource_arn_must_name_a_pipeline() {
        assert_eq!(
            pipeline_named_by("arn:sluice:codepipeline:::web-app").unwrap(),
            "web-app"
        );
        assert_eq!(
            pipeline_named_by("arn:aws:codepipeline:eu-west-1:111122223333:web-app").unwrap(),
            "web-app"
        );
        for bad in [
            "web-app",
            "*",
            "arn:sluice:iam:::user/alice",
            "arn:sluice:codepipeline:::web-app/Prod",
            "arn:sluice:codepipeline:::web\u{0}app",
        ] {
            assert_eq!(
                pipeline_named_by(bad).unwrap_err().code(),
                "InvalidArnException",
                "{bad}"
            );
        }
    }
}
