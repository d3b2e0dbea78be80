//! Policy documents: parsed and validated once, into a form that can only hold valid statements.
//!
//! Every problem of a document is reported at once, each with its path
//! (`Statement[1].Action[0]`), so an editor can show them all next to the text.

use std::fmt;

use serde_json::{Map, Value};

use super::action::{Action, Service};
use super::arn::{Resource, ResourcePattern};
use super::glob::Glob;

/// IAM's limit on a policy document's size, in characters.
pub const MAX_DOCUMENT_CHARS: usize = 6144;

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        })
    }
}

/// One entry of `Action`/`NotAction`: `*`, or a known service and an operation pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionPattern {
    /// `None` for `*` (every action of every service).
    service: Option<Service>,
    /// The operation pattern, lowercased (actions match case-insensitively).
    operation: Glob,
}

impl ActionPattern {
    /// Parses an entry; the service must be known.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.is_empty() && text.bytes().all(|b| b == b'*') {
            return Ok(Self {
                service: None,
                operation: Glob::new("*"),
            });
        }
        let Some((service, operation)) = text.split_once(':') else {
            return Err(format!("{text:?} must be \"*\" or service:Operation"));
        };
        let service = Service::from_prefix(service).ok_or_else(|| {
            format!(
                "{text:?} names an unknown service {service:?} (known: codepipeline, iam, sluice)"
            )
        })?;
        if operation.is_empty()
            || !operation
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
        {
            return Err(format!(
                "{text:?} has an invalid operation (letters, digits, * and ? only)"
            ));
        }
        let pattern = Self {
            service: Some(service),
            operation: Glob::new(&operation.to_ascii_lowercase()),
        };
        // A statement whose action names nothing would silently grant (or deny) nothing.
        if !Action::ALL.iter().any(|a| pattern.matches(*a)) {
            return Err(match closest_action(service, operation) {
                Some(near) => format!(
                    "{text:?} is not an action of {}; did you mean {near}?",
                    service.prefix()
                ),
                None => format!("{text:?} matches no action of {}", service.prefix()),
            });
        }
        Ok(pattern)
    }

    /// Whether the pattern matches `action`.
    pub fn matches(&self, action: Action) -> bool {
        match self.service {
            None => true,
            Some(service) => {
                service == action.service() && self.operation.matches(action.lowercase_name())
            }
        }
    }
}

/// The catalog action of `service` nearest to `operation` (by edit distance, ignoring case), if
/// any is near enough to be what was meant.
fn closest_action(service: Service, operation: &str) -> Option<Action> {
    let wanted = operation.to_ascii_lowercase();
    Action::ALL
        .iter()
        .copied()
        .filter(|a| a.service() == service)
        .map(|a| (edit_distance(&wanted, a.lowercase_name()), a))
        .filter(|(d, a)| *d <= (a.name().len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Levenshtein distance over bytes (names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Which actions a statement applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionMatch {
    /// `Action`: any of these.
    Any(Vec<ActionPattern>),
    /// `NotAction`: any action except these.
    AllExcept(Vec<ActionPattern>),
}

/// Which resources a statement applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceMatch {
    /// `Resource`: any of these.
    Any(Vec<ResourcePattern>),
    /// `NotResource`: any resource except these.
    AllExcept(Vec<ResourcePattern>),
}

/// A validated statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    sid: Option<String>,
    effect: Effect,
    actions: ActionMatch,
    resources: ResourceMatch,
}

impl Statement {
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }

    pub fn actions(&self) -> &ActionMatch {
        &self.actions
    }

    /// Whether the statement's action part matches `action`.
    pub fn matches_action(&self, action: Action) -> bool {
        match &self.actions {
            ActionMatch::Any(patterns) => patterns.iter().any(|p| p.matches(action)),
            ActionMatch::AllExcept(patterns) => !patterns.iter().any(|p| p.matches(action)),
        }
    }

    /// Whether the statement's resource part matches `resource` acted on by `action`.
    pub fn matches_resource(&self, action: Action, resource: &Resource) -> bool {
        let service = action.service();
        match &self.resources {
            ResourceMatch::Any(patterns) => patterns.iter().any(|p| p.matches(service, resource)),
            ResourceMatch::AllExcept(patterns) => {
                !patterns.iter().any(|p| p.matches(service, resource))
            }
        }
    }

    /// Whether the statement applies to `action` on `resource`.
    pub fn matches(&self, action: Action, resource: &Resource) -> bool {
        self.matches_action(action) && self.matches_resource(action, resource)
    }
}

/// A validated policy document. Keeps its source text, which is what is stored and shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    statements: Vec<Statement>,
    source: String,
}

impl PolicyDocument {
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// The document as it was written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Parses and validates a document, reporting every problem.
    pub fn parse(text: &str) -> Result<Self, PolicyErrors> {
        let mut errors = PolicyErrors::default();
        let chars = text.chars().count();
        if chars > MAX_DOCUMENT_CHARS {
            errors.push(
                "",
                format!("the document has {chars} characters; the limit is {MAX_DOCUMENT_CHARS}"),
            );
            return Err(errors);
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                errors.push(
                    "",
                    format!(
                        "not valid JSON: {e} (line {}, column {})",
                        e.line(),
                        e.column()
                    ),
                );
                return Err(errors);
            }
        };
        let Value::Object(top) = value else {
            errors.push("", "the document must be a JSON object");
            return Err(errors);
        };
        for key in top.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                errors.push(
                    key,
                    format!("unknown key {key:?} (allowed: Version, Id, Statement)"),
                );
            }
        }
        match top.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(_) => errors.push("Version", "must be \"2012-10-17\""),
        }
        if top.get("Id").is_some_and(|id| !id.is_string()) {
            errors.push("Id", "must be a string");
        }
        let statements: Vec<(String, &Value)> = match top.get("Statement") {
            None => {
                errors.push("Statement", "is required");
                Vec::new()
            }
            Some(Value::Array(list)) if list.is_empty() => {
                errors.push("Statement", "must hold at least one statement");
                Vec::new()
            }
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("Statement[{i}]"), v))
                .collect(),
            Some(single @ Value::Object(_)) => vec![("Statement".to_string(), single)],
            Some(_) => {
                errors.push("Statement", "must be an object or a list of objects");
                Vec::new()
            }
        };
        let mut parsed = Vec::with_capacity(statements.len());
        let mut sids: Vec<&str> = Vec::new();
        for (path, value) in &statements {
            if let Some(statement) = parse_statement(path, value, &mut errors) {
                parsed.push(statement);
            }
            if let Some(Value::String(sid)) = value.get("Sid") {
                if !sid.is_empty() && sids.contains(&sid.as_str()) {
                    errors.push(
                        &format!("{path}.Sid"),
                        format!("{sid:?} is used by an earlier statement"),
                    );
                }
                sids.push(sid);
            }
        }
        if errors.is_empty() {
            Ok(Self {
                statements: parsed,
                source: text.to_string(),
            })
        } else {
            Err(errors)
        }
    }
}

fn parse_statement(path: &str, value: &Value, errors: &mut PolicyErrors) -> Option<Statement> {
    let Value::Object(fields) = value else {
        errors.push(path, "a statement must be a JSON object");
        return None;
    };
    let before = errors.len();
    for key in fields.keys() {
        let at = format!("{path}.{key}");
        match key.as_str() {
            "Sid" | "Effect" | "Action" | "NotAction" | "Resource" | "NotResource" => {}
            "Condition" => errors.push(
                &at,
                "Condition is not supported yet; remove it (ignoring it would grant more than the statement says)",
            ),
            "Principal" | "NotPrincipal" => errors.push(
                &at,
                format!("{key} does not belong in a policy attached to users, groups or tokens"),
            ),
            _ => errors.push(
                &at,
                format!(
                    "unknown key {key:?} (allowed: Sid, Effect, Action, NotAction, Resource, NotResource)"
                ),
            ),
        }
    }
    let sid = match fields.get("Sid") {
        None => None,
        Some(Value::String(s)) if s.chars().all(|c| c.is_ascii_alphanumeric()) => Some(s.clone()),
        Some(Value::String(_)) => {
            errors.push(&format!("{path}.Sid"), "may hold only letters and digits");
            None
        }
        Some(_) => {
            errors.push(&format!("{path}.Sid"), "must be a string");
            None
        }
    };
    let effect = match fields.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Some(Effect::Allow),
        Some(Value::String(e)) if e == "Deny" => Some(Effect::Deny),
        Some(_) => {
            errors.push(&format!("{path}.Effect"), "must be \"Allow\" or \"Deny\"");
            None
        }
        None => {
            errors.push(
                &format!("{path}.Effect"),
                "is required (\"Allow\" or \"Deny\")",
            );
            None
        }
    };
    let actions = exactly_one(path, fields, "Action", "NotAction", errors).and_then(|(key, v)| {
        let patterns = string_list(&format!("{path}.{key}"), v, errors, ActionPattern::parse)?;
        Some(if key == "Action" {
            ActionMatch::Any(patterns)
        } else {
            ActionMatch::AllExcept(patterns)
        })
    });
    let resources =
        exactly_one(path, fields, "Resource", "NotResource", errors).and_then(|(key, v)| {
            let patterns =
                string_list(&format!("{path}.{key}"), v, errors, ResourcePattern::parse)?;
            Some(if key == "Resource" {
                ResourceMatch::Any(patterns)
            } else {
                ResourceMatch::AllExcept(patterns)
            })
        });
    if errors.len() != before {
        return None;
    }
    Some(Statement {
        sid,
        effect: effect?,
        actions: actions?,
        resources: resources?,
    })
}

fn exactly_one<'a>(
    path: &str,
    fields: &'a Map<String, Value>,
    positive: &'static str,
    negative: &'static str,
    errors: &mut PolicyErrors,
) -> Option<(&'static str, &'a Value)> {
    match (fields.get(positive), fields.get(negative)) {
        (Some(v), None) => Some((positive, v)),
        (None, Some(v)) => Some((negative, v)),
        (Some(_), Some(_)) => {
            errors.push(
                &format!("{path}.{negative}"),
                format!("a statement has either {positive} or {negative}, not both"),
            );
            None
        }
        (None, None) => {
            errors.push(
                &format!("{path}.{positive}"),
                format!("is required (or {negative})"),
            );
            None
        }
    }
}

/// A string or a non-empty list of strings, each parsed with `parse`.
fn string_list<T>(
    path: &str,
    value: &Value,
    errors: &mut PolicyErrors,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<Vec<T>> {
    let items: Vec<(String, &Value)> = match value {
        Value::String(_) => vec![(path.to_string(), value)],
        Value::Array(list) if list.is_empty() => {
            errors.push(path, "must not be empty");
            return None;
        }
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{path}[{i}]"), v))
            .collect(),
        _ => {
            errors.push(path, "must be a string or a list of strings");
            return None;
        }
    };
    let mut parsed = Vec::with_capacity(items.len());
    let mut ok = true;
    for (at, item) in items {
        match item {
            Value::String(s) => match parse(s) {
                Ok(p) => parsed.push(p),
                Err(message) => {
                    errors.push(&at, message);
                    ok = false;
                }
            },
            _ => {
                errors.push(&at, "must be a string");
                ok = false;
            }
        }
    }
    ok.then_some(parsed)
}

/// One problem in a policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Where: `""` for the whole document, else e.g. `Statement[1].Action[0]`.
    pub path: String,
    pub message: String,
}

/// Every problem found in a document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyErrors(Vec<PolicyError>);

impl PolicyErrors {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(PolicyError {
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, in document order.
    pub fn errors(&self) -> &[PolicyError] {
        &self.0
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if e.path.is_empty() {
                write!(f, "{}", e.message)?;
            } else {
                write!(f, "{}: {}", e.path, e.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(text: &str) -> Vec<(String, String)> {
        PolicyDocument::parse(text)
            .unwrap_err()
            .errors()
            .iter()
            .map(|e| (e.path.clone(), e.message.clone()))
            .collect()
    }

    fn paths_of(text: &str) -> Vec<String> {
        errors_of(text).into_iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn the_contract_example_parses() {
        let doc = PolicyDocument::parse(
            r#"{
              "Version": "2012-10-17",
              "Statement": [
                { "Sid": "ReadEverything", "Effect": "Allow",
                  "Action": ["codepipeline:Get*", "codepipeline:List*"], "Resource": "*" },
                { "Sid": "ApproveProdOnly", "Effect": "Allow",
                  "Action": "codepipeline:PutApprovalResult",
                  "Resource": "arn:aws:codepipeline:us-east-1:111122223333:web-app/Prod/ReleaseGate" },
                { "Effect": "Deny", "Action": "codepipeline:DeletePipeline", "Resource": "*" }
              ]
            }"#,
        )
        .unwrap();
        assert_eq!(doc.statements().len(), 3);
        assert_eq!(doc.statements()[0].sid(), Some("ReadEverything"));
        assert_eq!(doc.statements()[2].effect(), Effect::Deny);
    }

    #[test]
    fn a_misspelt_action_is_an_error_naming_the_real_one() {
        let doc = |action: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"*"}}]}}"#
            )
        };
        let errors = errors_of(&doc("codepipeline:PutApprovalResul"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .1
                .contains("did you mean codepipeline:PutApprovalResult"),
            "{errors:?}"
        );
        assert!(
            errors_of(&doc("iam:CreateUsr"))[0]
                .1
                .contains("iam:CreateUser")
        );
        assert!(
            errors_of(&doc("iam:Frobnicate"))[0]
                .1
                .contains("matches no action of iam")
        );
        assert!(
            errors_of(&doc("iam:Zz*"))[0]
                .1
                .contains("matches no action")
        );
        for fine in [
            "iam:createuser",
            "iam:Get*",
            "codepipeline:*",
            "*",
            "sluice:Get?erverStatus",
        ] {
            assert!(PolicyDocument::parse(&doc(fine)).is_ok(), "{fine}");
        }
    }

    #[test]
    fn a_single_statement_object_is_accepted() {
        let doc = PolicyDocument::parse(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        )
        .unwrap();
        assert_eq!(doc.statements().len(), 1);
    }

    #[test]
    fn conditions_are_rejected_not_ignored() {
        let errors = errors_of(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*",
                "Condition":{"StringEquals":{"aws:username":"bob"}}}]}"#,
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "Statement[0].Condition");
        assert!(errors[0].1.contains("not supported"));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let paths = paths_of(
            r#"{"Version":"2012-10-17","Extra":1,"Statement":[
                {"Effect":"Allow","Action":"codepipeline:GetPipeline","Resource":"*"},
                {"Effect":"Maybe","Action":[],"Resource":"*"},
                {"Action":["s3:GetObject","codepipeline:Get*"],"Resource":"bucket","Colour":"red"},
                {"Effect":"Deny","Action":"*","NotAction":"iam:*","Resource":"*"},
                {"Effect":"Allow","Action":"*"}
            ]}"#,
        );
        assert_eq!(
            paths,
            [
                "Extra",
                "Statement[1].Effect",
                "Statement[1].Action",
                "Statement[2].Colour",
                "Statement[2].Effect",
                "Statement[2].Action[0]",
                "Statement[2].Resource",
                "Statement[3].NotAction",
                "Statement[4].Resource",
            ]
        );
    }

    #[test]
    fn messages_name_what_is_wrong() {
        let errors = errors_of(
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
        );
        assert!(errors[0].1.contains("unknown service \"s3\""), "{errors:?}");
        let errors = errors_of(
            r#"{"Statement":[{"Effect":"Allow","Action":"GetPipeline","Resource":"*"}]}"#,
        );
        assert!(errors[0].1.contains("service:Operation"), "{errors:?}");
        let errors = errors_of(r#"{"Statement":[]}"#);
        assert_eq!(
            errors[0],
            (
                "Statement".into(),
                "must hold at least one statement".into()
            )
        );
        let errors = errors_of(
            r#"{"Version":"2020-01-01","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        );
        assert_eq!(errors[0].0, "Version");
        let errors = errors_of("[1,2]");
        assert_eq!(errors[0].1, "the document must be a JSON object");
        let errors = errors_of("{\"Statement\": ");
        assert!(errors[0].1.starts_with("not valid JSON"), "{errors:?}");
    }

    #[test]
    fn sids_are_alphanumeric_and_unique() {
        let paths = paths_of(
            r#"{"Statement":[
                {"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},
                {"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},
                {"Sid":"no spaces","Effect":"Allow","Action":"*","Resource":"*"}
            ]}"#,
        );
        assert_eq!(paths, ["Statement[1].Sid", "Statement[2].Sid"]);
    }

    #[test]
    fn documents_over_6144_characters_are_refused() {
        let statement = r#"{"Effect":"Allow","Action":"codepipeline:GetPipeline","Resource":"*"}"#;
        let many = vec![statement; 100].join(",");
        let text = format!(r#"{{"Version":"2012-10-17","Statement":[{many}]}}"#);
        assert!(text.len() > MAX_DOCUMENT_CHARS);
        let errors = errors_of(&text);
        assert!(errors[0].1.contains("limit is 6144"), "{errors:?}");
    }

    #[test]
    fn action_patterns_match_case_insensitively() {
        let p = ActionPattern::parse("CodePipeline:get*").unwrap();
        assert!(p.matches(Action::GetPipeline));
        assert!(p.matches(Action::GetPipelineState));
        assert!(!p.matches(Action::ListPipelines));
        assert!(!p.matches(Action::GetUser), "another service");
        assert!(
            ActionPattern::parse("*")
                .unwrap()
                .matches(Action::LookupAuditEvents)
        );
        assert!(
            ActionPattern::parse("iam:*")
                .unwrap()
                .matches(Action::CreateUser)
        );
        assert!(ActionPattern::parse("codepipeline:Get Pipeline").is_err());
        assert!(ActionPattern::parse("codepipeline:").is_err());
    }
}
