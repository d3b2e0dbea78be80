//! The one conversion from a wire declaration into a valid [`Pipeline`]. Every rule of
//! CodePipeline's §1 constraints and §2.2 structural rules is checked here, and every problem is
//! reported at once with its path (`stages[1].actions[0].inputArtifacts[0]`). Past this point
//! nothing re-checks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use super::action_types::{self, ActionType, Format};
use super::wire::{ActionDeclaration, PatternFilter, PipelineDeclaration, StageDeclaration};
use super::{ExecutionMode, Pipeline, PipelineType};

/// Sluice's one region. An action's `region` may be absent, empty, or this.
pub const REGION: &str = "local";

/// CodePipeline's quotas.
pub const MAX_STAGES: usize = 50;
pub const MAX_ACTIONS_PER_STAGE: usize = 50;
pub const MAX_ACTIONS: usize = 500;
pub const MAX_VARIABLES: usize = 50;
pub const MAX_TRIGGERS: usize = 50;

/// CodePipeline's exception names for declaration problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProblemKind {
    /// Shape constraints: patterns, lengths, enumerations, ranges.
    Validation,
    InvalidStructure,
    InvalidStageDeclaration,
    InvalidActionDeclaration,
    InvalidBlockerDeclaration,
    LimitExceeded,
}

impl ProblemKind {
    pub fn exception(self) -> &'static str {
        match self {
            ProblemKind::Validation => "ValidationException",
            ProblemKind::InvalidStructure => "InvalidStructureException",
            ProblemKind::InvalidStageDeclaration => "InvalidStageDeclarationException",
            ProblemKind::InvalidActionDeclaration => "InvalidActionDeclarationException",
            ProblemKind::InvalidBlockerDeclaration => "InvalidBlockerDeclarationException",
            ProblemKind::LimitExceeded => "LimitExceededException",
        }
    }
}

/// One problem of a declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// `pipeline.stages[1].actions[0].inputArtifacts[0]`-style, without the `pipeline.` prefix.
    pub path: String,
    pub message: String,
}

/// Every problem of a declaration, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, kind: ProblemKind, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            kind,
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn all(&self) -> &[Problem] {
        &self.0
    }

    /// The exception the API answers with: the first problem's.
    pub fn exception(&self) -> &'static str {
        self.0
            .first()
            .map_or("ValidationException", |p| p.kind.exception())
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} problem{} found: ", if n == 1 { "" } else { "s" })?;
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", p.path, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

use ProblemKind::*;

fn name_ok(s: &str, max: usize, extra: &[char]) -> bool {
    let n = s.chars().count();
    (1..=max).contains(&n)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

/// `[A-Za-z0-9.@\-_]+`, 1..100: pipeline, stage and action names.
fn entity_name(p: &mut Problems, path: &str, value: &str, what: &str) {
    if !name_ok(value, 100, &['.', '@', '-', '_']) {
        p.push(
            Validation,
            path,
            format!(
                "{what} must be 1-100 characters of letters, digits and . @ - _ (got {:?})",
                shorten(value)
            ),
        );
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

fn artifact_name_ok(s: &str) -> bool {
    name_ok(s, 100, &['-', '_'])
}

fn namespace_ok(s: &str) -> bool {
    name_ok(s, 100, &['@', '-', '_'])
}

/// Converts a declaration into a valid pipeline, or reports every problem. Each rule family is
/// one function below; they share only what one family declares and another consumes (the
/// artifacts, namespaces and variables a pipeline declares).
pub fn validate(mut decl: PipelineDeclaration) -> Result<Pipeline, Problems> {
    let mut p = Problems::default();
    let (execution_mode, pipeline_type) = check_pipeline_fields(&mut p, &decl);
    let variable_names = check_variables(&mut p, &decl, pipeline_type, execution_mode);
    check_stage_counts(&mut p, &decl);
    let declared = check_declarations(&mut p, &decl, pipeline_type, execution_mode);
    check_consumers(&mut p, &decl, &declared, &variable_names);
    check_triggers(&mut p, &decl, pipeline_type, &declared.source_actions);

    if !p.0.is_empty() {
        // Shape problems first, then the structural ones, each group in document order.
        p.0.sort_by_key(|x| x.kind != Validation);
        return Err(p);
    }
    normalize(&mut decl);
    Ok(Pipeline {
        declaration: decl,
        execution_mode,
        pipeline_type,
    })
}

/// The pipeline's own fields: name, role, artifact store, version, execution mode and type.
fn check_pipeline_fields(
    p: &mut Problems,
    decl: &PipelineDeclaration,
) -> (ExecutionMode, PipelineType) {
    entity_name(p, "name", &decl.name, "the pipeline name");
    if let Some(role) = &decl.role_arn
        && role.chars().count() > 1024
    {
        p.push(Validation, "roleArn", "must be at most 1024 characters");
    }
    if decl.artifact_stores.is_some() {
        p.push(
            InvalidStructure,
            "artifactStores",
            "Sluice has one region and one artifact store: use artifactStore, or leave it out",
        );
    }
    if let Some(store) = &decl.artifact_store {
        if store.store_type != "S3" {
            p.push(Validation, "artifactStore.type", "must be \"S3\"");
        }
        let n = store.location.chars().count();
        if !(3..=63).contains(&n)
            || !store
                .location
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            p.push(
                Validation,
                "artifactStore.location",
                "must be 3-63 characters of letters, digits, - and .",
            );
        }
        if let Some(key) = &store.encryption_key
            && key.key_type != "KMS"
        {
            p.push(
                Validation,
                "artifactStore.encryptionKey.type",
                "must be \"KMS\"",
            );
        }
    }
    if let Some(v) = decl.version
        && v < 1
    {
        p.push(Validation, "version", "must be at least 1");
    }

    let execution_mode = match decl.execution_mode.as_deref() {
        None | Some("SUPERSEDED") => ExecutionMode::Superseded,
        Some("QUEUED") => ExecutionMode::Queued,
        Some("PARALLEL") => ExecutionMode::Parallel,
        Some(other) => {
            p.push(
                Validation,
                "executionMode",
                format!("must be SUPERSEDED, QUEUED or PARALLEL (got {other:?})"),
            );
            ExecutionMode::Superseded
        }
    };
    let pipeline_type = match decl.pipeline_type.as_deref() {
        None | Some("V2") => PipelineType::V2,
        Some("V1") => PipelineType::V1,
        Some(other) => {
            p.push(
                Validation,
                "pipelineType",
                format!("must be V1 or V2 (got {other:?})"),
            );
            PipelineType::V2
        }
    };

    (execution_mode, pipeline_type)
}

/// Pipeline-level variables (V2), and what V1 pipelines may not have; the declared names.
fn check_variables(
    p: &mut Problems,
    decl: &PipelineDeclaration,
    pipeline_type: PipelineType,
    execution_mode: ExecutionMode,
) -> HashSet<String> {
    let mut variable_names = HashSet::new();
    if let Some(vars) = &decl.variables {
        if vars.len() > MAX_VARIABLES {
            p.push(
                LimitExceeded,
                "variables",
                format!("at most {MAX_VARIABLES} variables (got {})", vars.len()),
            );
        }
        for (i, v) in vars.iter().enumerate() {
            let at = format!("variables[{i}]");
            if !name_ok(&v.name, 128, &['@', '-', '_']) {
                p.push(
                    Validation,
                    format!("{at}.name"),
                    "must be 1-128 characters of letters, digits and @ - _",
                );
            } else if !variable_names.insert(v.name.clone()) {
                p.push(
                    InvalidStructure,
                    format!("{at}.name"),
                    format!("the variable {} is declared twice", v.name),
                );
            }
            if let Some(d) = &v.default_value
                && !(1..=1000).contains(&d.chars().count())
            {
                p.push(
                    Validation,
                    format!("{at}.defaultValue"),
                    "must be 1-1000 characters",
                );
            }
            if let Some(d) = &v.description
                && d.chars().count() > 200
            {
                p.push(
                    Validation,
                    format!("{at}.description"),
                    "must be at most 200 characters",
                );
            }
        }
        if pipeline_type == PipelineType::V1 && !vars.is_empty() {
            p.push(
                InvalidStructure,
                "variables",
                "pipeline-level variables need a V2 pipeline",
            );
        }
    }
    if pipeline_type == PipelineType::V1 && execution_mode != ExecutionMode::Superseded {
        p.push(
            InvalidStructure,
            "executionMode",
            "QUEUED and PARALLEL need a V2 pipeline",
        );
    }

    variable_names
}

/// CodePipeline's quotas on stages and actions.
fn check_stage_counts(p: &mut Problems, decl: &PipelineDeclaration) {
    let stage_count = decl.stages.len();
    if stage_count < 2 {
        p.push(
            InvalidStructure,
            "stages",
            format!("Pipeline has only {stage_count} stage(s). There should be a minimum of 2 stages in a pipeline"),
        );
    } else if stage_count > MAX_STAGES {
        p.push(
            LimitExceeded,
            "stages",
            format!("at most {MAX_STAGES} stages (got {stage_count})"),
        );
    }
    let total_actions: usize = decl.stages.iter().map(|s| s.actions.len()).sum();
    if total_actions > MAX_ACTIONS {
        p.push(
            LimitExceeded,
            "stages",
            format!("at most {MAX_ACTIONS} actions in a pipeline (got {total_actions})"),
        );
    }
}

/// What the stages and actions of a pipeline declare.
struct Declared {
    /// Output artifacts: name → (stage index, runOrder, path).
    outputs: HashMap<String, (usize, i64, String)>,
    /// Namespaces: name → (stage index, runOrder, action type, path).
    namespaces: HashMap<String, (usize, i64, Option<&'static ActionType>, String)>,
    /// Source actions by name, with their type.
    source_actions: HashMap<String, &'static ActionType>,
}

/// Stage and action names, categories and placement, types, output artifacts and namespaces:
/// everything an action declares, so that later checks can see all of it.
fn check_declarations(
    p: &mut Problems,
    decl: &PipelineDeclaration,
    pipeline_type: PipelineType,
    execution_mode: ExecutionMode,
) -> Declared {
    let mut stage_names = HashSet::new();
    let mut outputs: HashMap<String, (usize, i64, String)> = HashMap::new();
    let mut namespaces: HashMap<String, (usize, i64, Option<&'static ActionType>, String)> =
        HashMap::new();
    let mut any_non_source = false;
    let mut source_actions: HashMap<String, &'static ActionType> = HashMap::new();

    for (si, stage) in decl.stages.iter().enumerate() {
        let sp = format!("stages[{si}]");
        entity_name(p, &format!("{sp}.name"), &stage.name, "a stage name");
        if !stage_names.insert(stage.name.clone()) {
            p.push(
                InvalidStructure,
                format!("{sp}.name"),
                format!("the stage name {} is used twice", stage.name),
            );
        }
        check_stage_options(p, &sp, stage, pipeline_type, execution_mode);
        let n = stage.actions.len();
        if n == 0 {
            p.push(
                InvalidStageDeclaration,
                format!("{sp}.actions"),
                format!("the stage {} has no actions", stage.name),
            );
        } else if n > MAX_ACTIONS_PER_STAGE {
            p.push(
                LimitExceeded,
                format!("{sp}.actions"),
                format!("at most {MAX_ACTIONS_PER_STAGE} actions in a stage (got {n})"),
            );
        }
        let mut action_names = HashSet::new();
        for (ai, action) in stage.actions.iter().enumerate() {
            let ap = format!("{sp}.actions[{ai}]");
            entity_name(p, &format!("{ap}.name"), &action.name, "an action name");
            if !action_names.insert(action.name.clone()) {
                p.push(
                    InvalidStageDeclaration,
                    format!("{ap}.name"),
                    format!(
                        "the action name {} is used twice in the stage {}",
                        action.name, stage.name
                    ),
                );
            }
            let run_order = action.run_order.unwrap_or(1);
            let is_source = action.action_type_id.category == "Source";
            if is_source {
                if si != 0 {
                    p.push(
                        InvalidStructure,
                        format!("{ap}.actionTypeId.category"),
                        format!(
                            "Source actions belong only in the first stage; {} is in {}",
                            action.name, stage.name
                        ),
                    );
                }
            } else {
                any_non_source = true;
                if si == 0 {
                    p.push(
                        InvalidStructure,
                        format!("{ap}.actionTypeId.category"),
                        "Pipeline should start with a stage that only contains source actions.",
                    );
                }
            }
            let action_type = resolve_type(p, &ap, action);
            if let (true, Some(t)) = (is_source, action_type) {
                source_actions.insert(action.name.clone(), t);
            }
            for (oi, out) in action.output_artifacts.iter().flatten().enumerate() {
                let op = format!("{ap}.outputArtifacts[{oi}]");
                if !artifact_name_ok(&out.name) {
                    p.push(
                        Validation,
                        format!("{op}.name"),
                        "must be 1-100 characters of letters, digits, - and _",
                    );
                } else if let Some((_, _, first)) = outputs.get(&out.name) {
                    p.push(
                        InvalidActionDeclaration,
                        format!("{op}.name"),
                        format!("Output artifact name must be unique within the pipeline: {} is already produced at {first}", out.name),
                    );
                } else {
                    outputs.insert(out.name.clone(), (si, run_order, op.clone()));
                }
                if out.files.is_some() {
                    p.push(
                        InvalidActionDeclaration,
                        format!("{op}.files"),
                        "output files belong to Compute actions, which Sluice does not have",
                    );
                }
            }
            if let Some(ns) = &action.namespace {
                if !namespace_ok(ns) {
                    p.push(
                        Validation,
                        format!("{ap}.namespace"),
                        "must be 1-100 characters of letters, digits and @ - _",
                    );
                } else if ns == "codepipeline" || ns == "variables" {
                    p.push(
                        InvalidActionDeclaration,
                        format!("{ap}.namespace"),
                        format!("{ns} is a reserved namespace"),
                    );
                } else if let Some((_, _, _, first)) = namespaces.get(ns) {
                    p.push(
                        InvalidActionDeclaration,
                        format!("{ap}.namespace"),
                        format!("Namespaces must be unique across the pipeline definition: {ns} is already used at {first}"),
                    );
                } else {
                    namespaces.insert(
                        ns.clone(),
                        (si, run_order, action_type, format!("{ap}.namespace")),
                    );
                }
            }
        }
    }
    if decl.stages.len() >= 2 && !any_non_source {
        p.push(
            InvalidStructure,
            "stages",
            "a pipeline needs at least one action that is not a source",
        );
    }
    for (ns, (_, _, _, at)) in &namespaces {
        if outputs.contains_key(ns) {
            p.push(
                InvalidActionDeclaration,
                at.clone(),
                format!("the namespace {ns} must differ from every artifact name"),
            );
        }
    }

    Declared {
        outputs,
        namespaces,
        source_actions,
    }
}

/// What each action consumes: run order, input artifacts, its type's counts and configuration,
/// its fields, and the variables it references.
fn check_consumers(
    p: &mut Problems,
    decl: &PipelineDeclaration,
    declared: &Declared,
    variable_names: &HashSet<String>,
) {
    let (outputs, namespaces) = (&declared.outputs, &declared.namespaces);
    for (si, stage) in decl.stages.iter().enumerate() {
        for (ai, action) in stage.actions.iter().enumerate() {
            let ap = format!("stages[{si}].actions[{ai}]");
            let run_order = action.run_order.unwrap_or(1);
            if !(1..=999).contains(&run_order) {
                p.push(
                    Validation,
                    format!("{ap}.runOrder"),
                    format!("must be between 1 and 999 (got {run_order})"),
                );
            }
            let runs_before = |(os, oo): (usize, i64)| os < si || (os == si && oo < run_order);
            for (ii, input) in action.input_artifacts.iter().flatten().enumerate() {
                let ip = format!("{ap}.inputArtifacts[{ii}]");
                if !artifact_name_ok(&input.name) {
                    p.push(
                        Validation,
                        format!("{ip}.name"),
                        "must be 1-100 characters of letters, digits, - and _",
                    );
                    continue;
                }
                match outputs.get(&input.name) {
                    None => p.push(
                        InvalidActionDeclaration,
                        ip,
                        format!("no action produces the input artifact {}", input.name),
                    ),
                    Some((os, oo, _)) if !runs_before((*os, *oo)) => p.push(
                        InvalidActionDeclaration,
                        ip,
                        format!(
                            "the input artifact {} is produced by an action that does not run before {} (an earlier stage, or this stage with a lower runOrder)",
                            input.name, action.name
                        ),
                    ),
                    Some(_) => {}
                }
            }
            let action_type = action_types::find(
                &action.action_type_id.category,
                &action.action_type_id.owner,
                &action.action_type_id.provider,
                &action.action_type_id.version,
            );
            if let Some(t) = action_type {
                check_counts(p, &ap, action, t);
                check_configuration(p, &ap, action, t);
            }
            check_action_fields(p, &ap, action, action_type);
            check_references(p, &ap, action, si, run_order, namespaces, variable_names);
        }
    }
}

/// Triggers (V2): one per Git source action, with well-formed push and pull-request filters.
fn check_triggers(
    p: &mut Problems,
    decl: &PipelineDeclaration,
    pipeline_type: PipelineType,
    source_actions: &HashMap<String, &'static ActionType>,
) {
    if let Some(triggers) = &decl.triggers {
        if pipeline_type == PipelineType::V1 && !triggers.is_empty() {
            p.push(
                InvalidStructure,
                "triggers",
                "Triggers can only be used with V2 pipelines",
            );
        }
        if triggers.len() > MAX_TRIGGERS {
            p.push(
                LimitExceeded,
                "triggers",
                format!("at most {MAX_TRIGGERS} triggers"),
            );
        }
        let mut seen = HashSet::new();
        for (ti, t) in triggers.iter().enumerate() {
            let tp = format!("triggers[{ti}]");
            if t.provider_type != "CodeStarSourceConnection" {
                p.push(
                    Validation,
                    format!("{tp}.providerType"),
                    "must be \"CodeStarSourceConnection\"",
                );
            }
            let g = &t.git_configuration;
            match source_actions.get(&g.source_action_name) {
                Some(at) if at.provider == "Git" => {}
                _ => p.push(
                    InvalidStructure,
                    format!("{tp}.gitConfiguration.sourceActionName"),
                    format!(
                        "{} is not a Git source action of this pipeline",
                        g.source_action_name
                    ),
                ),
            }
            let polls = decl
                .stages
                .iter()
                .flat_map(|s| &s.actions)
                .find(|a| a.name == g.source_action_name)
                .and_then(|a| a.configuration.as_ref())
                .and_then(|c| c.get("PollForSourceChanges"))
                .is_some_and(|v| v == "true");
            if polls {
                p.push(
                    InvalidStructure,
                    format!("{tp}.gitConfiguration.sourceActionName"),
                    format!(
                        "{} has a trigger, which replaces polling: set its PollForSourceChanges to false or leave it out",
                        g.source_action_name
                    ),
                );
            }
            if !seen.insert(g.source_action_name.clone()) {
                p.push(
                    InvalidStructure,
                    format!("{tp}.gitConfiguration.sourceActionName"),
                    "one trigger per source action",
                );
            }
            let gp = format!("{tp}.gitConfiguration");
            if g.push.is_none() && g.pull_request.is_none() {
                p.push(Validation, gp.clone(), "needs push or pullRequest filters");
            }
            if let Some(push) = &g.push {
                if !(1..=3).contains(&push.len()) {
                    p.push(Validation, format!("{gp}.push"), "must hold 1-3 filters");
                }
                for (fi, f) in push.iter().enumerate() {
                    let fp = format!("{gp}.push[{fi}]");
                    if f.tags.is_some() && (f.branches.is_some() || f.file_paths.is_some()) {
                        p.push(
                            Validation,
                            fp.clone(),
                            "a push filter has tags alone, or branches (with optional filePaths)",
                        );
                    }
                    if f.tags.is_none() && f.branches.is_none() {
                        p.push(
                            Validation,
                            fp.clone(),
                            "a push filter needs tags or branches",
                        );
                    }
                    for (name, filter) in [
                        ("tags", &f.tags),
                        ("branches", &f.branches),
                        ("filePaths", &f.file_paths),
                    ] {
                        check_patterns(p, &format!("{fp}.{name}"), filter.as_ref());
                    }
                }
            }
            if let Some(prs) = &g.pull_request {
                if !(1..=3).contains(&prs.len()) {
                    p.push(
                        Validation,
                        format!("{gp}.pullRequest"),
                        "must hold 1-3 filters",
                    );
                }
                for (fi, f) in prs.iter().enumerate() {
                    let fp = format!("{gp}.pullRequest[{fi}]");
                    if let Some(events) = &f.events
                        && (!(1..=3).contains(&events.len())
                            || events
                                .iter()
                                .any(|e| !matches!(e.as_str(), "OPEN" | "UPDATED" | "CLOSED")))
                    {
                        p.push(
                            Validation,
                            format!("{fp}.events"),
                            "1-3 of OPEN, UPDATED, CLOSED",
                        );
                    }
                    if f.branches.is_none() {
                        p.push(
                            Validation,
                            fp.clone(),
                            "a pull-request filter needs branches",
                        );
                    }
                    for (name, filter) in [("branches", &f.branches), ("filePaths", &f.file_paths)]
                    {
                        check_patterns(p, &format!("{fp}.{name}"), filter.as_ref());
                    }
                }
            }
        }
    }
}

/// Fills CodePipeline's defaults so that outputs always carry them.
fn normalize(decl: &mut PipelineDeclaration) {
    decl.execution_mode
        .get_or_insert_with(|| "SUPERSEDED".into());
    decl.pipeline_type.get_or_insert_with(|| "V2".into());
    for stage in &mut decl.stages {
        for action in &mut stage.actions {
            action.run_order.get_or_insert(1);
            action.configuration.get_or_insert_with(BTreeMap::new);
            action.input_artifacts.get_or_insert_with(Vec::new);
            action.output_artifacts.get_or_insert_with(Vec::new);
            if action.region.as_deref() == Some("") {
                action.region = None;
            }
        }
    }
}

fn check_stage_options(
    p: &mut Problems,
    sp: &str,
    stage: &StageDeclaration,
    pt: PipelineType,
    mode: ExecutionMode,
) {
    if stage.blockers.is_some() {
        p.push(
            InvalidBlockerDeclaration,
            format!("{sp}.blockers"),
            "blockers are reserved by CodePipeline and not supported",
        );
    }
    for (field, value) in [
        ("onSuccess", &stage.on_success),
        ("beforeEntry", &stage.before_entry),
    ] {
        if value.is_some() {
            p.push(
                InvalidStageDeclaration,
                format!("{sp}.{field}"),
                "stage conditions (rules) are not supported yet; remove them (ignoring them would change what the stage does)",
            );
        }
    }
    if let Some(f) = &stage.on_failure {
        if pt == PipelineType::V1 {
            p.push(
                InvalidStructure,
                format!("{sp}.onFailure"),
                "onFailure needs a V2 pipeline",
            );
        }
        if f.conditions.is_some() {
            p.push(
                InvalidStageDeclaration,
                format!("{sp}.onFailure.conditions"),
                "stage conditions (rules) are not supported yet; remove them (ignoring them would change what the stage does)",
            );
        }
        match f.result.as_deref() {
            None | Some("RETRY") => {}
            Some("ROLLBACK") if mode == ExecutionMode::Parallel => p.push(
                InvalidStageDeclaration,
                format!("{sp}.onFailure.result"),
                "ROLLBACK is not available in PARALLEL mode",
            ),
            Some("ROLLBACK") => {}
            Some(other) => p.push(
                Validation,
                format!("{sp}.onFailure.result"),
                format!("must be ROLLBACK or RETRY (got {other:?})"),
            ),
        }
        if let Some(rc) = &f.retry_configuration {
            if !matches!(
                rc.retry_mode.as_deref(),
                None | Some("FAILED_ACTIONS") | Some("ALL_ACTIONS")
            ) {
                p.push(
                    Validation,
                    format!("{sp}.onFailure.retryConfiguration.retryMode"),
                    "must be FAILED_ACTIONS or ALL_ACTIONS",
                );
            }
            if f.result.as_deref() != Some("RETRY") {
                p.push(
                    InvalidStageDeclaration,
                    format!("{sp}.onFailure.retryConfiguration"),
                    "retryConfiguration goes with result RETRY",
                );
            }
        }
    }
}

/// The built-in type of an action, reporting unknown and AWS-only types.
fn resolve_type(
    p: &mut Problems,
    ap: &str,
    action: &ActionDeclaration,
) -> Option<&'static ActionType> {
    let id = &action.action_type_id;
    let at = format!("{ap}.actionTypeId");
    if !matches!(
        id.category.as_str(),
        "Source" | "Build" | "Deploy" | "Test" | "Invoke" | "Approval" | "Compute"
    ) {
        p.push(
            Validation,
            format!("{at}.category"),
            format!(
                "must be Source, Build, Deploy, Test, Invoke, Approval or Compute (got {:?})",
                id.category
            ),
        );
        return None;
    }
    if !matches!(
        id.owner.as_str(),
        "AWS" | "ThirdParty" | "Custom" | "Sluice"
    ) {
        p.push(
            Validation,
            format!("{at}.owner"),
            format!(
                "must be Sluice, AWS, ThirdParty or Custom (got {:?})",
                id.owner
            ),
        );
        return None;
    }
    let provider_ok = |s: &str, max| {
        (1..=max).contains(&s.chars().count())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !provider_ok(&id.provider, 35) {
        p.push(
            Validation,
            format!("{at}.provider"),
            "must be 1-35 characters of letters, digits, - and _",
        );
        return None;
    }
    if !provider_ok(&id.version, 9) {
        p.push(
            Validation,
            format!("{at}.version"),
            "must be 1-9 characters of letters, digits, - and _",
        );
        return None;
    }
    match action_types::find(&id.category, &id.owner, &id.provider, &id.version) {
        Some(t) => Some(t),
        None => {
            let named = format!(
                "{}/{}/{}/{}",
                id.category, id.owner, id.provider, id.version
            );
            let message = match action_types::sluice_equivalent(
                &id.category,
                &id.owner,
                &id.provider,
            ) {
                Some(ours) => format!(
                    "Sluice cannot run the action type {named}; use {ours}, which plays its part"
                ),
                None => format!("the action type {named} does not exist"),
            };
            p.push(InvalidActionDeclaration, at, message);
            None
        }
    }
}

fn check_counts(p: &mut Problems, ap: &str, action: &ActionDeclaration, t: &ActionType) {
    for (field, count, (min, max)) in [
        (
            "inputArtifacts",
            action.input_artifacts.as_ref().map_or(0, Vec::len),
            t.inputs,
        ),
        (
            "outputArtifacts",
            action.output_artifacts.as_ref().map_or(0, Vec::len),
            t.outputs,
        ),
    ] {
        let what = if field == "inputArtifacts" {
            "input"
        } else {
            "output"
        };
        if count < min {
            p.push(
                InvalidActionDeclaration,
                format!("{ap}.{field}"),
                format!("Action {} declares {count} {what} artifacts which is less than the minimum count ({min})", action.name),
            );
        } else if count > max {
            p.push(
                InvalidActionDeclaration,
                format!("{ap}.{field}"),
                format!("Action {} declares {count} {what} artifacts which is more than the maximum count ({max})", action.name),
            );
        }
    }
}

fn check_configuration(p: &mut Problems, ap: &str, action: &ActionDeclaration, t: &ActionType) {
    let empty = BTreeMap::new();
    let config = action.configuration.as_ref().unwrap_or(&empty);
    for (key, value) in config {
        let kp = format!("{ap}.configuration.{key}");
        if !(1..=50).contains(&key.chars().count()) {
            p.push(
                Validation,
                format!("{ap}.configuration"),
                "configuration keys must be 1-50 characters",
            );
            continue;
        }
        if !(1..=1000).contains(&value.chars().count()) {
            p.push(
                Validation,
                kp.clone(),
                "configuration values must be 1-1000 characters",
            );
        }
        if let Some(prop) = t.property(key) {
            if let Err(message) = check_format(prop.format, value) {
                p.push(InvalidActionDeclaration, kp, message);
            }
        } else {
            let known: Vec<&str> = t.properties.iter().map(|p| p.name).collect();
            p.push(
                InvalidActionDeclaration,
                kp,
                format!(
                    "{} has no configuration property {key} (it has: {})",
                    t.id(),
                    known.join(", ")
                ),
            );
        }
    }
    // How to roll out to a group means nothing without a group.
    if !config.contains_key("DeploymentGroup") {
        for key in ["DeploymentConfig", "MinimumHealthyHosts", "AutoRollback"] {
            if config.contains_key(key) && t.property("DeploymentGroup").is_some() {
                p.push(
                    InvalidActionDeclaration,
                    format!("{ap}.configuration.{key}"),
                    format!("{key} says how to deploy to a group: name the DeploymentGroup too"),
                );
            }
        }
    }
    for prop in t.properties.iter().filter(|p| p.required) {
        if !config.contains_key(prop.name) {
            p.push(
                InvalidActionDeclaration,
                format!("{ap}.configuration"),
                format!("{} needs the configuration property {}", t.id(), prop.name),
            );
        }
    }
}

/// Checks a value against its property's format. Messages never quote the value (it may be a
/// secret, or a buildspec too long to read in a message). A value holding a `#{…}` reference is
/// checked after it is resolved, when the action runs, unless it is a document.
pub fn check_format(format: Format, value: &str) -> Result<(), String> {
    let deferred = value.contains("#{");
    match format {
        Format::Line | Format::MultiLine | Format::Secret => Ok(()),
        Format::Count { min, max } => match value.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(format!(
                "must be a whole number from {min} to {max} (not a variable)"
            )),
        },
        Format::Flag => crate::engine::approval::parse_flag(value).map(|_| ()),
        Format::GroupNames => crate::engine::approval::parse_groups(value).map(|_| ()),
        _ if deferred && !matches!(format, Format::BuildSpec | Format::EnvironmentVariables) => {
            Ok(())
        }
        Format::HttpUrl => match url::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
            _ => Err("must be an http:// or https:// URL".into()),
        },
        Format::RepositoryUrl => {
            if repository_url_ok(value) {
                Ok(())
            } else {
                Err(
                    "must be an https:// or ssh:// URL, user@host:path, or an absolute local path"
                        .into(),
                )
            }
        }
        Format::AbsolutePath => {
            if !value.starts_with('/') {
                Err("must be an absolute path (starting with /)".into())
            } else if value.split('/').any(|part| part == "..") {
                Err("must not go up with ..; name the directory itself".into())
            } else {
                Ok(())
            }
        }
        Format::Number { min, max } => match value.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(format!("must be a whole number from {min} to {max}")),
        },
        Format::BuildSpec => check_buildspec(value),
        Format::EnvironmentVariables => check_environment_variables(value),
        Format::DeploymentGroup => crate::workers::labels::Labels::group(value)
            .map(|_| ())
            .map_err(|_| {
                "must be one worker label: letters, digits, '-', '_' or '.', starting with a letter or digit (up to 64)".into()
            }),
        Format::DeploymentConfig => crate::engine::rollout::DeploymentConfig::parse(value)
            .map(|_| ())
            .map_err(|_| "must be OneAtATime, HalfAtATime or AllAtOnce".into()),
        Format::MinimumHealthyHosts => crate::engine::rollout::MinimumHealthyHosts::parse(value)
            .map(|_| ())
            .map_err(|_| {
                "must be a number of hosts (2) or a percentage of the group (75%)".into()
            }),
    }
}

fn repository_url_ok(value: &str) -> bool {
    if value.starts_with('/') {
        return !value.split('/').any(|part| part == "..");
    }
    if let Ok(u) = url::Url::parse(value) {
        return matches!(u.scheme(), "https" | "ssh") && u.host().is_some();
    }
    // scp-like: user@host:path (no scheme, a host, a non-empty path).
    match value.split_once(':') {
        Some((user_host, path)) => match user_host.split_once('@') {
            Some((user, host)) => {
                !user.is_empty()
                    && !host.is_empty()
                    && !path.is_empty()
                    && !user_host.contains('/')
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
            }
            None => false,
        },
        None => false,
    }
}

/// An inline buildspec: a YAML mapping with `version: 0.2` and a `phases` mapping.
fn check_buildspec(value: &str) -> Result<(), String> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(value).map_err(|e| match e.location() {
            Some(at) => format!(
                "is not valid YAML (line {}, column {})",
                at.line(),
                at.column()
            ),
            None => "is not valid YAML".to_string(),
        })?;
    let map = doc
        .as_mapping()
        .ok_or("must be a YAML mapping with version and phases")?;
    let version_ok = match map.get("version") {
        Some(serde_yaml_ng::Value::Number(n)) => n.as_f64() == Some(0.2),
        Some(serde_yaml_ng::Value::String(s)) => s == "0.2",
        _ => false,
    };
    if !version_ok {
        return Err("needs version: 0.2".into());
    }
    match map.get("phases") {
        Some(serde_yaml_ng::Value::Mapping(phases)) if !phases.is_empty() => Ok(()),
        _ => {
            Err("needs phases (install, pre_build, build or post_build, each with commands)".into())
        }
    }
}

/// `[{"name": "A", "value": "1"}, …]`, names unique and non-empty.
fn check_environment_variables(value: &str) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Variable {
        name: String,
        #[allow(dead_code)]
        value: String,
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let list: Vec<Variable> = serde_json::from_str(value).map_err(|e| {
        format!(
            "must be a JSON list of {{\"name\": …, \"value\": …}} objects (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let mut seen = HashSet::new();
    for (i, v) in list.iter().enumerate() {
        if v.name.is_empty()
            || !v
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!("[{i}].name must be letters, digits and _"));
        }
        if !seen.insert(v.name.as_str()) {
            return Err(format!("[{i}].name {} is set twice", v.name));
        }
        if v.kind.as_deref().is_some_and(|k| k != "PLAINTEXT") {
            return Err(format!("[{i}].type must be PLAINTEXT (or left out)"));
        }
    }
    Ok(())
}

fn check_action_fields(
    p: &mut Problems,
    ap: &str,
    action: &ActionDeclaration,
    t: Option<&ActionType>,
) {
    for (field, present) in [
        ("commands", action.commands.is_some()),
        ("outputVariables", action.output_variables.is_some()),
        (
            "environmentVariables",
            action.environment_variables.is_some(),
        ),
    ] {
        if present {
            p.push(
                InvalidActionDeclaration,
                format!("{ap}.{field}"),
                format!("The following action cannot contain a {field} field: {}. Sluice has no Compute actions; use Build/Sluice/Command/1", action.name),
            );
        }
    }
    if let Some(minutes) = action.timeout_in_minutes {
        if !(5..=86400).contains(&minutes) {
            p.push(
                Validation,
                format!("{ap}.timeoutInMinutes"),
                "must be between 5 and 86400",
            );
        }
        if t.is_some_and(|t| t.category != "Approval") {
            p.push(
                InvalidActionDeclaration,
                format!("{ap}.timeoutInMinutes"),
                "timeoutInMinutes applies only to Approval actions",
            );
        }
    }
    if let Some(region) = action.region.as_deref()
        && !region.is_empty()
        && region != REGION
    {
        p.push(
            InvalidActionDeclaration,
            format!("{ap}.region"),
            format!("Sluice has one region, {REGION:?}; leave region out (got {region:?})"),
        );
    }
    if let Some(role) = &action.role_arn
        && role.chars().count() > 1024
    {
        p.push(
            Validation,
            format!("{ap}.roleArn"),
            "must be at most 1024 characters",
        );
    }
}

/// `#{Namespace.Variable}` references in configuration values.
fn check_references(
    p: &mut Problems,
    ap: &str,
    action: &ActionDeclaration,
    si: usize,
    run_order: i64,
    namespaces: &HashMap<String, (usize, i64, Option<&'static ActionType>, String)>,
    variables: &HashSet<String>,
) {
    let id = &action.action_type_id;
    let t = action_types::find(&id.category, &id.owner, &id.provider, &id.version);
    for (key, value) in action.configuration.iter().flatten() {
        // A secret is taken literally, and never quoted back.
        if t.and_then(|t| t.property(key)).is_some_and(|p| p.secret()) {
            continue;
        }
        for reference in references(value) {
            let kp = format!("{ap}.configuration.{key}");
            let Some((ns, var)) = reference.split_once('.') else {
                p.push(InvalidActionDeclaration, kp, format!("#{{{reference}}} must name a namespace and a variable: #{{Namespace.Variable}}"));
                continue;
            };
            match ns {
                "codepipeline" => {
                    if var != "PipelineExecutionId" {
                        p.push(InvalidActionDeclaration, kp, format!("#{{{reference}}}: the codepipeline namespace has only PipelineExecutionId"));
                    }
                }
                "variables" => {
                    if !variables.contains(var) {
                        p.push(
                            InvalidActionDeclaration,
                            kp,
                            format!("#{{{reference}}}: the pipeline declares no variable {var}"),
                        );
                    }
                }
                _ => match namespaces.get(ns) {
                    None => p.push(
                        InvalidActionDeclaration,
                        kp,
                        format!("#{{{reference}}}: no action has the namespace {ns}"),
                    ),
                    Some((ns_stage, ns_order, ns_type, _)) => {
                        let before = *ns_stage < si || (*ns_stage == si && *ns_order < run_order);
                        if !before {
                            p.push(
                                InvalidActionDeclaration,
                                kp,
                                format!("#{{{reference}}}: the action with namespace {ns} is not guaranteed to run before {}", action.name),
                            );
                        } else if let Some(t) = ns_type
                            && !t.produces_variable(var)
                        {
                            p.push(
                                InvalidActionDeclaration,
                                kp,
                                format!("#{{{reference}}}: {} produces no variable {var}", t.id()),
                            );
                        }
                    }
                },
            }
        }
    }
}

/// The `X.Y` of every `#{X.Y}` in a value.
pub fn references(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("#{") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

fn check_patterns(p: &mut Problems, path: &str, filter: Option<&PatternFilter>) {
    let Some(f) = filter else { return };
    for (name, list) in [("includes", &f.includes), ("excludes", &f.excludes)] {
        if let Some(list) = list
            && (!(1..=8).contains(&list.len())
                || list.iter().any(|s| !(1..=255).contains(&s.chars().count())))
        {
            p.push(
                Validation,
                format!("{path}.{name}"),
                "1-8 patterns of 1-255 characters",
            );
        }
    }
}
