//! Pipeline definitions: create, read (any version), update (compare-and-set on the version),
//! delete, list (only what the caller may see), and the action type registry. Secret
//! configuration values are sealed before they are stored and shown as `****`.

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Caller, Kind, Op, Page, Paged, Services};
use crate::access::{Action, Resource};
use crate::db;
use crate::error::AppError;
use crate::pipeline::action_types::{self, ActionType};
use crate::pipeline::wire::PipelineDeclaration;
use crate::pipeline::{self, Pipeline};
use crate::sealing::MasterKey;

pub use super::tags::Tag;

/// What `GetPipeline` returns besides the declaration.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub pipeline_arn: String,
    pub created: OffsetDateTime,
    pub updated: OffsetDateTime,
}

impl Metadata {
    /// CodePipeline's `metadata` object: the ARN, and the times as epoch seconds.
    pub fn wire(&self) -> serde_json::Value {
        let epoch = |t: OffsetDateTime| t.unix_timestamp_nanos() as f64 / 1e9;
        json!({
            "pipelineArn": self.pipeline_arn,
            "created": epoch(self.created),
            "updated": epoch(self.updated),
        })
    }
}

/// A pipeline in a listing.
#[derive(Debug, Clone)]
pub struct Summary {
    pub name: String,
    pub version: i32,
    pub pipeline_type: String,
    pub execution_mode: String,
    pub created: OffsetDateTime,
    pub updated: OffsetDateTime,
}

/// Parsed, masked declarations by (pipeline id, version), at most [`DeclarationCache::CAPACITY`].
#[derive(Debug, Default)]
pub struct DeclarationCache {
    entries: std::sync::Mutex<
        std::collections::HashMap<(Uuid, i32), std::sync::Arc<PipelineDeclaration>>,
    >,
}

impl DeclarationCache {
    const CAPACITY: usize = 512;

    fn get(&self, id: Uuid, version: i32) -> Option<std::sync::Arc<PipelineDeclaration>> {
        self.entries.lock().ok()?.get(&(id, version)).cloned()
    }

    fn put(&self, id: Uuid, version: i32, declaration: std::sync::Arc<PipelineDeclaration>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= Self::CAPACITY {
                entries.clear();
            }
            entries.insert((id, version), declaration);
        }
    }
}

/// CodePipeline's exception for a pipeline name that is taken (the wizard shows it on the name).
pub const NAME_IN_USE: &str = "PipelineNameInUseException";

/// The mask secret values are shown as, and that keeps a stored secret when sent back.
pub const MASK: &str = "****";

fn not_found(name: &str) -> AppError {
    AppError::NotFound {
        code: "PipelineNotFoundException",
        message: format!("Sluice does not have a pipeline with name '{name}'"),
    }
}

/// A pipeline name as sent by a caller, checked before it reaches the database (a NUL or any
/// other character no pipeline name can hold is a clear error, never a database failure).
pub(super) fn existing_name(name: &str) -> Result<&str, AppError> {
    let valid = (1..=100).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '_' | '-'));
    if valid {
        Ok(name)
    } else {
        Err(AppError::validation(
            "name",
            "is not a pipeline name (1-100 of A-Z a-z 0-9 . @ _ -)",
        ))
    }
}

fn checked(decl: PipelineDeclaration) -> Result<Pipeline, AppError> {
    pipeline::validate(decl).map_err(AppError::Declaration)
}

/// The action type of an action, if built in.
fn type_of(action: &crate::pipeline::wire::ActionDeclaration) -> Option<&'static ActionType> {
    let id = &action.action_type_id;
    action_types::find(&id.category, &id.owner, &id.provider, &id.version)
}

/// What a pipeline secret is sealed for: its pipeline, stage, action and property. A ciphertext
/// copied to another place (another pipeline, another action) does not open there.
pub fn secret_context(pipeline_id: Uuid, stage: &str, action: &str, property: &str) -> String {
    format!("pipeline-secret:{pipeline_id}:{stage}:{action}:{property}")
}

/// New secret values typed into the console's editor before the pipeline is saved. The editor's
/// working copy travels in the page, so a typed secret travels in it sealed (for this user and
/// pipeline only), never as text; saving opens it again just before the save.
#[derive(Clone)]
pub struct SecretDrafts {
    key: MasterKey,
    context: String,
}

impl SecretDrafts {
    pub fn new(key: MasterKey, user_name: &str, pipeline: &str) -> Self {
        SecretDrafts {
            key,
            context: format!("editor-draft:{user_name}:{pipeline}"),
        }
    }

    /// The drafts of `caller` for the pipeline `name`.
    pub fn of(s: &Services, caller: &Caller, name: &str) -> Self {
        SecretDrafts::new((*s.root_key).clone(), caller.user_name(), name)
    }

    pub fn seal(&self, plaintext: &str) -> String {
        self.key.seal(plaintext, &self.context)
    }

    /// Whether a working-copy value is a typed, not yet saved secret.
    pub fn is_draft(value: &str) -> bool {
        MasterKey::is_sealed(value)
    }

    /// Replaces every draft in `decl` with the value typed; `Err` names a draft that does not
    /// open (a page from another user or pipeline, or damaged).
    pub fn open_all(&self, decl: &mut PipelineDeclaration) -> Result<(), String> {
        for stage in &mut decl.stages {
            for action in &mut stage.actions {
                for (key, value) in action.configuration.iter_mut().flatten() {
                    if Self::is_draft(value) {
                        *value = self.key.open(value, &self.context).ok_or_else(|| {
                            format!(
                                "the typed {key} of {} cannot be read back; type it again",
                                action.name
                            )
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Seals every secret configuration value. `****` keeps the value stored for the same stage,
/// action and property in `previous`, but only while the action is of the same type and every
/// property that says where its secrets go (a webhook's `Url`) is unchanged: otherwise whoever
/// changed the destination would receive a secret they were never told.
fn seal_secrets(
    decl: &mut PipelineDeclaration,
    key: &MasterKey,
    pipeline_id: Uuid,
    previous: Option<&PipelineDeclaration>,
) -> Result<(), AppError> {
    for (si, stage) in decl.stages.iter_mut().enumerate() {
        for (ai, action) in stage.actions.iter_mut().enumerate() {
            let Some(t) = type_of(action) else { continue };
            let before = previous
                .and_then(|p| p.stages.iter().find(|s| s.name == stage.name))
                .and_then(|s| s.actions.iter().find(|a| a.name == action.name));
            let empty = std::collections::BTreeMap::new();
            let config_before = before
                .and_then(|a| a.configuration.as_ref())
                .unwrap_or(&empty);
            let moved = before.map(|b| {
                if b.action_type_id != action.action_type_id {
                    return Some("its type changed".to_string());
                }
                let now = action.configuration.as_ref().unwrap_or(&empty);
                t.properties
                    .iter()
                    .filter(|p| p.sends_secrets)
                    .find(|p| now.get(p.name) != config_before.get(p.name))
                    .map(|p| format!("its {} changed", p.name))
            });
            let Some(config) = action.configuration.as_mut() else {
                continue;
            };
            for prop in t.properties.iter().filter(|p| p.secret()) {
                let Some(value) = config.get_mut(prop.name) else {
                    continue;
                };
                let path = format!(
                    "pipeline.stages[{si}].actions[{ai}].configuration.{}",
                    prop.name
                );
                if value == MASK {
                    let kept = config_before
                        .get(prop.name)
                        .filter(|v| MasterKey::is_sealed(v));
                    match (kept, moved.as_ref()) {
                        (Some(sealed), Some(None)) => *value = sealed.clone(),
                        (Some(_), Some(Some(why))) => {
                            return Err(AppError::validation(
                                &path,
                                format!(
                                    "{MASK} would keep the stored {} of {}, but {why}; type the {} again",
                                    prop.name, action.name, prop.name
                                ),
                            ));
                        }
                        _ => {
                            return Err(AppError::validation(
                                &path,
                                format!(
                                    "{MASK} keeps a stored secret, but {} has none stored for {}; send the value",
                                    action.name, prop.name
                                ),
                            ));
                        }
                    }
                } else {
                    let context = secret_context(pipeline_id, &stage.name, &action.name, prop.name);
                    // The same secret typed again is no change: keep its stored text.
                    let same = config_before
                        .get(prop.name)
                        .filter(|old| key.open(old, &context).as_deref() == Some(value.as_str()));
                    *value = match same {
                        Some(old) => old.clone(),
                        None => key.seal(value, &context),
                    };
                }
            }
        }
    }
    Ok(())
}

/// Replaces every sealed value with `****`.
pub(super) fn masked(mut decl: PipelineDeclaration) -> PipelineDeclaration {
    for stage in &mut decl.stages {
        for action in &mut stage.actions {
            for value in action.configuration.iter_mut().flat_map(|c| c.values_mut()) {
                if MasterKey::is_sealed(value) {
                    *value = MASK.to_string();
                }
            }
        }
    }
    decl
}

fn stored(text: String) -> Result<PipelineDeclaration, AppError> {
    serde_json::from_str(&text).map_err(|e| {
        AppError::Internal(anyhow::Error::new(e).context("a stored declaration does not parse"))
    })
}

fn to_json(decl: &PipelineDeclaration) -> serde_json::Value {
    serde_json::to_value(decl).unwrap_or_default()
}

/// The audit parameters of a declaration: secrets masked.
fn audit_params(decl: &PipelineDeclaration) -> serde_json::Value {
    let mut shown = decl.clone();
    for stage in &mut shown.stages {
        for action in &mut stage.actions {
            let Some(t) = type_of(action) else { continue };
            if let Some(config) = action.configuration.as_mut() {
                for prop in t.properties.iter().filter(|p| p.secret()) {
                    if let Some(v) = config.get_mut(prop.name) {
                        *v = MASK.to_string();
                    }
                }
            }
        }
    }
    json!({ "pipeline": to_json(&shown) })
}

/// Creates a pipeline at version 1, with `tags`. Tagging needs `codepipeline:TagResource` on the
/// pipeline too, as in CodePipeline.
pub async fn create_pipeline(
    s: &Services,
    c: &Caller,
    decl: PipelineDeclaration,
    tags: Vec<Tag>,
) -> Result<PipelineDeclaration, AppError> {
    let name = decl.name.clone();
    if !tags.is_empty() {
        super::require(
            s,
            c,
            Action::TagResource,
            &Resource::pipeline(&name),
            json!({"name": name, "tags": tags}),
        )
        .await?;
    }
    let created = Op::run(
        s,
        c,
        Kind::Change,
        Action::CreatePipeline,
        Resource::pipeline(&name),
        {
            let mut params = audit_params(&decl);
            if !tags.is_empty() {
                params["tags"] = json!(tags);
            }
            params
        },
        async |op| {
            super::tags::check_tags(&tags)?;
            let pipeline = checked(decl)?.with_version(1);
            super::connections::check_passed(op, None, pipeline.declaration()).await?;
            let mut declaration = pipeline.declaration().clone();
            let id = Uuid::new_v4();
            seal_secrets(&mut declaration, &s.root_key, id, None)?;
            let now = op.now();
            let author = op.caller().user_name().to_string();
            if !db::pipelines::insert(op.conn(), id, &name, &to_json(&declaration), &author, now)
                .await?
            {
                return Err(AppError::Rejected {
                    code: NAME_IN_USE,
                    message: format!("A pipeline with the name '{name}' already exists"),
                });
            }
            super::tags::put_new(op.conn(), id, &tags).await?;
            // As in CodePipeline, a new pipeline runs at once, unless a variable without a
            // default needs a value first.
            let needs_values = declaration
                .variables
                .iter()
                .flatten()
                .any(|v| v.default_value.is_none());
            if !needs_values {
                let trigger = super::executions::Trigger {
                    trigger_type: "CreatePipeline",
                    detail: Resource::user(op.caller().user_name()).to_string(),
                };
                super::executions::start_in(op, &name, Default::default(), trigger).await?;
            }
            Ok(masked(declaration))
        },
    )
    .await?;
    // Its first execution's source actions start at once on this process's workers.
    s.wake.notify_waiters();
    Ok(created)
}

/// A pipeline's id and stored name, for a live stream that has authorized its viewer on the
/// pipeline already (it matches the database's announcements, which name ids).
pub async fn id_of(s: &Services, name: &str) -> Result<Option<(uuid::Uuid, String)>, AppError> {
    let mut conn = s.pool.acquire().await?;
    Ok(db::pipelines::find(&mut conn, existing_name(name)?)
        .await?
        .map(|row| (row.id, row.name)))
}

pub async fn get_pipeline(
    s: &Services,
    c: &Caller,
    name: &str,
    version: Option<i64>,
) -> Result<(PipelineDeclaration, Metadata), AppError> {
    let (shared, metadata) = get_pipeline_shared(s, c, name, version).await?;
    Ok(((*shared).clone(), metadata))
}

/// [`get_pipeline`] without copying the declaration (the view page's hot path).
pub async fn get_pipeline_shared(
    s: &Services,
    c: &Caller,
    name: &str,
    version: Option<i64>,
) -> Result<(std::sync::Arc<PipelineDeclaration>, Metadata), AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::GetPipeline,
        Resource::pipeline(name),
        json!({"name": name, "version": version}),
        async |op| {
            let wanted = match version {
                None => None,
                Some(v) => {
                    let v = i32::try_from(v).map_err(|_| {
                        AppError::validation("version", "must be between 1 and 2147483647")
                    })?;
                    if v < 1 {
                        return Err(AppError::validation("version", "must be at least 1"));
                    }
                    Some(v)
                }
            };
            let row = db::pipelines::find(op.conn(), existing_name(name)?)
                .await?
                .ok_or_else(|| not_found(name))?;
            let version = wanted.unwrap_or(row.current_version);
            let declaration = shown_declaration(s, op.conn(), &row, version).await?;
            Ok((
                declaration,
                Metadata {
                    pipeline_arn: Resource::pipeline(name).to_string(),
                    created: row.created_at,
                    updated: row.updated_at,
                },
            ))
        },
    )
    .await
}

/// A version of a pipeline as it may be shown (secrets masked), from the cache of such.
pub(super) async fn shown_declaration(
    s: &Services,
    conn: &mut sqlx::PgConnection,
    row: &db::pipelines::PipelineRow,
    version: i32,
) -> Result<std::sync::Arc<PipelineDeclaration>, AppError> {
    if let Some(cached) = s.declarations.get(row.id, version) {
        return Ok(cached);
    }
    let v = db::pipelines::version(conn, row.id, version)
        .await?
        .ok_or_else(|| AppError::NotFound {
            code: "PipelineVersionNotFoundException",
            message: format!(
                "The pipeline '{}' has no version {version} (its latest is {})",
                row.name, row.current_version
            ),
        })?;
    let shown = std::sync::Arc::new(masked(stored(v.declaration)?));
    s.declarations.put(row.id, version, shown.clone());
    Ok(shown)
}

/// What an update did.
#[derive(Debug, Clone)]
pub enum Saved {
    /// A new version was stored; the declaration as stored (masked).
    NewVersion(PipelineDeclaration),
    /// The declaration equals the current version: nothing was stored, and this is the current
    /// version (a save that changes nothing makes no version).
    Unchanged(PipelineDeclaration),
}

impl Saved {
    pub fn declaration(self) -> PipelineDeclaration {
        match self {
            Saved::NewVersion(d) | Saved::Unchanged(d) => d,
        }
    }
}

/// Saves a new version. The declaration's `version` must be the current one.
pub async fn update_pipeline(
    s: &Services,
    c: &Caller,
    decl: PipelineDeclaration,
) -> Result<Saved, AppError> {
    let name = decl.name.clone();
    Op::run(
        s,
        c,
        Kind::Change,
        Action::UpdatePipeline,
        Resource::pipeline(&name),
        audit_params(&decl),
        async |op| {
        let expected = decl
            .version
            .ok_or_else(|| AppError::validation("pipeline.version", "is required: send the version you are updating"))?;
        let row = db::pipelines::find(op.conn(), existing_name(&name)?).await?.ok_or_else(|| not_found(&name))?;
        let conflict = |current: i32| AppError::Conflict(format!(
            "Someone else saved version {current} of the pipeline '{name}' since you read version {expected}; reload it and apply your change again"
        ));
        if i64::from(row.current_version) != expected {
            return Err(conflict(row.current_version));
        }
        let pipeline = checked(decl)?;
        let previous = db::pipelines::version(op.conn(), row.id, row.current_version)
            .await?
            .map(|v| stored(v.declaration))
            .transpose()?;
        super::connections::check_passed(op, previous.as_ref(), pipeline.declaration()).await?;
        let next = row.current_version + 1;
        let mut declaration = pipeline.with_version(next.into()).declaration().clone();
        seal_secrets(&mut declaration, &s.root_key, row.id, previous.as_ref())?;
        if let Some(previous) = previous
            && (PipelineDeclaration { version: previous.version, ..declaration.clone() }) == previous
        {
            op.add_audit_param("unchanged", json!(true));
            return Ok(Saved::Unchanged(masked(previous)));
        }
        let now = op.now();
        let author = op.caller().user_name().to_string();
        match db::pipelines::update(op.conn(), row.id, row.current_version, &to_json(&declaration), &author, now).await? {
            Some(_) => Ok(Saved::NewVersion(masked(declaration))),
            None => {
                let current = db::pipelines::find(op.conn(), &name).await?.map_or(row.current_version, |r| r.current_version);
                Err(conflict(current))
            }
        }
    },
    )
    .await
}

/// Deletes a pipeline and its versions. Deleting one that does not exist succeeds (CodePipeline's
/// behaviour); the audit trail stays either way.
pub async fn delete_pipeline(s: &Services, c: &Caller, name: &str) -> Result<(), AppError> {
    Op::run(
        s,
        c,
        Kind::Change,
        Action::DeletePipeline,
        Resource::pipeline(name),
        json!({"name": name}),
        async |op| {
            let now = op.now();
            // Its running executions stop first: no worker goes on building for a pipeline
            // that is gone. (Deleting a pipeline that does not exist succeeds, as in
            // CodePipeline.)
            if let Some(row) = db::pipelines::find(op.conn(), existing_name(name)?).await? {
                let stopped =
                    super::executions::stop_all_before_delete(op.conn(), now, row.id).await?;
                op.add_audit_param("stoppedExecutions", json!(stopped));
            }
            db::pipelines::delete(op.conn(), existing_name(name)?).await?;
            Ok(())
        },
    )
    .await
}

/// Pipelines by name, only those the caller may `GetPipeline`.
/// The name an import can use: `wanted` if it is free, else the first free of `wanted-2`,
/// `wanted-3` … (`pipeline::import::renamed`); `None` when all are taken. For those who may
/// create pipelines, as a name in use is what their create would be told anyway.
pub async fn free_name(s: &Services, c: &Caller, wanted: &str) -> Result<Option<String>, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::CreatePipeline,
        Resource::pipeline("*"),
        json!({"freeNameFor": wanted}),
        async |op| {
            let mut candidates = vec![wanted.to_string()];
            candidates.extend(crate::pipeline::import::rename_candidates(wanted));
            let taken = db::pipelines::taken(op.conn(), &candidates).await?;
            if !taken.iter().any(|t| t == wanted) {
                return Ok(Some(wanted.to_string()));
            }
            Ok(crate::pipeline::import::renamed(wanted, |c| {
                taken.iter().any(|t| t == c)
            }))
        },
    )
    .await
}

pub async fn list_pipelines(
    s: &Services,
    c: &Caller,
    page: &Page,
) -> Result<Paged<Summary>, AppError> {
    search_pipelines(s, c, None, page).await
}

/// [`list_pipelines`] narrowed to names containing `name_contains` (case-insensitive).
pub async fn search_pipelines(
    s: &Services,
    c: &Caller,
    name_contains: Option<&str>,
    page: &Page,
) -> Result<Paged<Summary>, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::ListPipelines,
        Resource::All,
        json!({}),
        async |op| {
            let limit = page.limit()?;
            let mut visible = Vec::new();
            let mut after = page.next.clone();
            // Scan until a full page of visible pipelines (plus one to know there is more): first
            // exactly that many rows, then bigger batches if some were hidden from the caller.
            let mut batch_size = limit + 1;
            loop {
                let batch =
                    db::pipelines::list(op.conn(), name_contains, after.as_deref(), batch_size)
                        .await?;
                let exhausted = (batch.len() as i64) < batch_size;
                batch_size = 500;
                after = batch.last().map(|r| r.name.clone());
                for row in batch {
                    if op
                        .caller()
                        .can(Action::GetPipeline, &Resource::pipeline(&row.name))
                    {
                        visible.push(Summary {
                            name: row.name,
                            version: row.current_version,
                            pipeline_type: row.pipeline_type,
                            execution_mode: row.execution_mode,
                            created: row.created_at,
                            updated: row.updated_at,
                        });
                    }
                    if visible.len() as i64 > limit {
                        break;
                    }
                }
                if exhausted || visible.len() as i64 > limit {
                    break;
                }
            }
            Ok(Paged::from_rows(visible, limit, |p| p.name.clone()))
        },
    )
    .await
}

/// The built-in action types.
pub async fn list_action_types(
    s: &Services,
    c: &Caller,
) -> Result<&'static [ActionType], AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::ListActionTypes,
        Resource::All,
        json!({}),
        async |_op| Ok(action_types::BUILT_IN),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_secret(value: &str) -> PipelineDeclaration {
        serde_json::from_value(json!({
            "name": "p",
            "stages": [
                {"name": "Source", "actions": [{"name": "Src", "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
                    "configuration": {"RepositoryUrl": "r", "Branch": "main"}, "outputArtifacts": [{"name": "S"}]}]},
                {"name": "Notify", "actions": [{"name": "Hook", "actionTypeId": {"category": "Invoke", "owner": "Sluice", "provider": "Webhook", "version": "1"},
                    "configuration": {"Url": "https://hooks.example.com", "Secret": value}}]}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn the_declaration_cache_is_keyed_by_version_and_bounded() {
        let cache = DeclarationCache::default();
        let id = Uuid::new_v4();
        let decl = std::sync::Arc::new(with_secret(MASK));
        cache.put(id, 1, decl.clone());
        assert!(cache.get(id, 1).is_some());
        assert!(
            cache.get(id, 2).is_none(),
            "another version is another entry"
        );
        assert!(
            cache.get(Uuid::new_v4(), 1).is_none(),
            "a re-created pipeline has a new id"
        );
        for v in 2..=(DeclarationCache::CAPACITY as i32 + 1) {
            cache.put(id, v, decl.clone());
        }
        assert!(cache.entries.lock().unwrap().len() <= DeclarationCache::CAPACITY);
    }

    fn secret_of(decl: &PipelineDeclaration) -> String {
        decl.stages[1].actions[0].configuration.as_ref().unwrap()["Secret"].clone()
    }

    fn with_hook(url: &str, value: &str) -> PipelineDeclaration {
        let mut d = with_secret(value);
        d.stages[1].actions[0]
            .configuration
            .as_mut()
            .unwrap()
            .insert("Url".into(), url.into());
        d
    }

    #[test]
    fn secrets_are_sealed_for_their_place_masked_and_kept_by_the_mask() {
        let key = MasterKey::from_bytes([3u8; 32]);
        let id = Uuid::new_v4();
        let here = secret_context(id, "Notify", "Hook", "Secret");
        let mut first = with_secret("s3cr3t");
        seal_secrets(&mut first, &key, id, None).unwrap();
        let sealed = secret_of(&first);
        assert!(MasterKey::is_sealed(&sealed));
        assert_eq!(key.open(&sealed, &here).as_deref(), Some("s3cr3t"));
        for elsewhere in [
            secret_context(Uuid::new_v4(), "Notify", "Hook", "Secret"),
            secret_context(id, "Other", "Hook", "Secret"),
            secret_context(id, "Notify", "Other", "Secret"),
            secret_context(id, "Notify", "Hook", "Url"),
        ] {
            assert_eq!(key.open(&sealed, &elsewhere), None, "{elsewhere}");
        }
        assert_eq!(secret_of(&masked(first.clone())), MASK);
        assert!(
            !to_json(&masked(first.clone()))
                .to_string()
                .contains("s3cr3t")
        );

        let mut kept = with_secret(MASK);
        seal_secrets(&mut kept, &key, id, Some(&first)).unwrap();
        assert_eq!(secret_of(&kept), sealed, "the mask keeps the stored value");

        let mut changed = with_secret("new-secret");
        seal_secrets(&mut changed, &key, id, Some(&first)).unwrap();
        assert_eq!(
            key.open(&secret_of(&changed), &here).as_deref(),
            Some("new-secret")
        );

        let mut nothing_stored = with_secret(MASK);
        assert!(seal_secrets(&mut nothing_stored, &key, id, None).is_err());
        assert_eq!(
            audit_params(&with_secret("s3cr3t"))["pipeline"]["stages"][1]["actions"][0]["configuration"]
                ["Secret"],
            MASK
        );
    }

    #[test]
    fn a_kept_secret_is_dropped_when_its_destination_or_type_changes() {
        let key = MasterKey::from_bytes([3u8; 32]);
        let id = Uuid::new_v4();
        let mut first = with_secret("s3cr3t");
        seal_secrets(&mut first, &key, id, None).unwrap();

        let mut redirected = with_hook("https://attacker.example.net", MASK);
        let err = seal_secrets(&mut redirected, &key, id, Some(&first)).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("its Url changed"), "{message}");
        assert!(message.contains("configuration.Secret"), "{message}");

        // The stored action was of another type under the same name.
        let mut other_type = first.clone();
        other_type.stages[1].actions[0].action_type_id.category = "Build".into();
        let mut back = with_secret(MASK);
        let err = seal_secrets(&mut back, &key, id, Some(&other_type)).unwrap_err();
        assert!(err.to_string().contains("its type changed"), "{err}");

        // A new secret with a new destination is fine, and so is the same destination.
        let mut fresh = with_hook("https://attacker.example.net", "new");
        seal_secrets(&mut fresh, &key, id, Some(&first)).unwrap();
        let mut same = with_hook("https://hooks.example.com", MASK);
        seal_secrets(&mut same, &key, id, Some(&first)).unwrap();
        assert_eq!(secret_of(&same), secret_of(&first));
    }
}

/// What a secret shows as in a comparison when its value differs from the older version's.
pub const MASK_CHANGED: &str = "**** (secret changed)";

/// Two versions of a pipeline to compare, masked; a secret whose stored value differs between
/// them shows as [`MASK_CHANGED`] in the newer one (each new value is sealed afresh, a kept one is
/// copied, so the stored texts differ exactly when the secret was set again).
pub async fn compare_versions(
    s: &Services,
    c: &Caller,
    name: &str,
    from: i64,
    to: i64,
) -> Result<(PipelineDeclaration, PipelineDeclaration), AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::GetPipeline,
        Resource::pipeline(name),
        json!({"name": name, "from": from, "to": to}),
        async |op| {
            let row = db::pipelines::find(op.conn(), existing_name(name)?)
                .await?
                .ok_or_else(|| not_found(name))?;
            let mut read = async |v: i64| -> Result<PipelineDeclaration, AppError> {
                let missing = || AppError::NotFound {
                    code: "PipelineVersionNotFoundException",
                    message: format!(
                        "The pipeline '{name}' has no version {v} (its latest is {})",
                        row.current_version
                    ),
                };
                let version = i32::try_from(v)
                    .ok()
                    .filter(|v| *v >= 1)
                    .ok_or_else(missing)?;
                let stored_version = db::pipelines::version(op.conn(), row.id, version)
                    .await?
                    .ok_or_else(missing)?;
                stored(stored_version.declaration)
            };
            let old = read(from).await?;
            let mut new = read(to).await?;
            for stage in &mut new.stages {
                let old_stage = old.stages.iter().find(|s| s.name == stage.name);
                for action in &mut stage.actions {
                    let old_config = old_stage
                        .and_then(|s| s.actions.iter().find(|a| a.name == action.name))
                        .and_then(|a| a.configuration.as_ref());
                    for (key, value) in action.configuration.iter_mut().flatten() {
                        if MasterKey::is_sealed(value)
                            && old_config.and_then(|c| c.get(key)) != Some(&*value)
                        {
                            *value = MASK_CHANGED.to_string();
                        }
                    }
                }
            }
            Ok((masked(old), masked(new)))
        },
    )
    .await
}

/// A version of a pipeline, for the versions list.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    pub version: i32,
    pub author: String,
    pub created: OffsetDateTime,
}

/// Every version of a pipeline, newest first.
pub async fn list_versions(
    s: &Services,
    c: &Caller,
    name: &str,
) -> Result<Vec<VersionInfo>, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::GetPipeline,
        Resource::pipeline(name),
        json!({"name": name}),
        async |op| {
            let row = db::pipelines::find(op.conn(), existing_name(name)?)
                .await?
                .ok_or_else(|| not_found(name))?;
            Ok(db::pipelines::versions(op.conn(), row.id)
                .await?
                .into_iter()
                .map(|v| VersionInfo {
                    version: v.version,
                    author: v.author,
                    created: v.created_at,
                })
                .collect())
        },
    )
    .await
}
