//! Variables, pure: the start-time values of an execution's pipeline variables, and the
//! resolution of `#{…}` references in an action's configuration just before it starts.
//!
//! `#{codepipeline.PipelineExecutionId}` is the execution's id, `#{variables.NAME}` a pipeline
//! variable (the value given at start, else the declaration's default), `#{Namespace.NAME}` an
//! output variable of the action with that namespace (which validation made sure runs earlier).
//! A reference that does not resolve fails the action, naming it. Secret properties are taken
//! literally and never resolved.

use std::collections::BTreeMap;

use crate::pipeline::wire::VariableDeclaration;

/// The values an action's references may name.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub execution_id: String,
    /// Pipeline variables at start (overrides, else defaults).
    pub variables: BTreeMap<String, String>,
    /// Output variables of the actions that ran, by their namespace.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

/// A reference that did not resolve, for the action's failure summary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the configuration property {property} refers to #{{{reference}}}, {why}")]
pub struct Unresolved {
    pub property: String,
    pub reference: String,
    pub why: String,
}

/// The pipeline variables of a new execution: each declared one gets the value given at start or
/// its default. A name given that is not declared, a value given twice or empty, or a declared
/// variable with neither, is an error naming it (StartPipelineExecution's ValidationException).
pub fn start_variables(
    declared: &[VariableDeclaration],
    given: &[(String, String)],
) -> Result<BTreeMap<String, String>, String> {
    let mut values = BTreeMap::new();
    for (name, value) in given {
        if !declared.iter().any(|d| &d.name == name) {
            return Err(format!("the pipeline declares no variable {name}"));
        }
        if !(1..=1000).contains(&value.chars().count()) {
            return Err(format!("the value of {name} must be 1-1000 characters"));
        }
        if values.insert(name.clone(), value.clone()).is_some() {
            return Err(format!("the variable {name} is given twice"));
        }
    }
    for d in declared {
        if !values.contains_key(&d.name) {
            match &d.default_value {
                Some(default) => {
                    values.insert(d.name.clone(), default.clone());
                }
                None => {
                    return Err(format!(
                        "the variable {} has no default value: give it one to start",
                        d.name
                    ));
                }
            }
        }
    }
    Ok(values)
}

/// Resolves every reference in `configuration`; `secret` says which properties to leave as they
/// are.
pub fn resolve(
    configuration: &BTreeMap<String, String>,
    scope: &Scope,
    secret: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, String>, Unresolved> {
    configuration
        .iter()
        .map(|(key, value)| {
            if secret(key) {
                return Ok((key.clone(), value.clone()));
            }
            resolve_value(value, scope)
                .map(|v| (key.clone(), v))
                .map_err(|(reference, why)| Unresolved {
                    property: key.clone(),
                    reference,
                    why,
                })
        })
        .collect()
}

/// One value with its references replaced; text outside `#{…}` is kept byte for byte (an
/// unclosed `#{` is text).
fn resolve_value(value: &str, scope: &Scope) -> Result<String, (String, String)> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("#{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        out.push_str(&rest[..start]);
        let reference = &after[..end];
        out.push_str(&lookup(reference, scope).map_err(|why| (reference.to_string(), why))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup(reference: &str, scope: &Scope) -> Result<String, String> {
    let Some((namespace, name)) = reference.split_once('.') else {
        return Err("which is not of the form Namespace.Variable".into());
    };
    match namespace {
        "codepipeline" if name == "PipelineExecutionId" => Ok(scope.execution_id.clone()),
        "codepipeline" => Err("but the codepipeline namespace has only PipelineExecutionId".into()),
        "variables" => scope
            .variables
            .get(name)
            .cloned()
            .ok_or_else(|| format!("but the pipeline has no variable {name}")),
        _ => match scope.namespaces.get(namespace) {
            None => Err(format!(
                "but no action with the namespace {namespace} has produced variables in this execution"
            )),
            Some(vars) => vars.get(name).cloned().ok_or_else(|| {
                format!("but the action with the namespace {namespace} produced no variable {name}")
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            execution_id: "4a1c".into(),
            variables: BTreeMap::from([("Env".into(), "prod".into())]),
            namespaces: BTreeMap::from([(
                "SourceVariables".into(),
                BTreeMap::from([("CommitId".into(), "abc123".into())]),
            )]),
        }
    }

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_kind_of_reference_resolves_and_text_stays_as_it_was() {
        let c = config(&[
            (
                "CustomData",
                "Ship #{SourceVariables.CommitId} to #{variables.Env}? (#{codepipeline.PipelineExecutionId}) #{ not closed",
            ),
            ("Plain", "  no refs\n"),
        ]);
        let out = resolve(&c, &scope(), |_| false).unwrap();
        assert_eq!(
            out["CustomData"],
            "Ship abc123 to prod? (4a1c) #{ not closed"
        );
        assert_eq!(out["Plain"], "  no refs\n");
    }

    #[test]
    fn an_unresolvable_reference_names_itself_and_its_property() {
        for (value, why) in [
            ("#{SourceVariables.Nope}", "produced no variable Nope"),
            ("#{Other.X}", "no action with the namespace Other"),
            ("#{variables.Missing}", "no variable Missing"),
            ("#{codepipeline.Other}", "only PipelineExecutionId"),
            ("#{nodot}", "not of the form"),
        ] {
            let err = resolve(&config(&[("Url", value)]), &scope(), |_| false).unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains("Url") && message.contains(value),
                "{message}"
            );
            assert!(message.contains(why), "{message}");
        }
    }

    #[test]
    fn secrets_are_taken_literally() {
        let c = config(&[("Secret", "#{variables.Env}")]);
        let out = resolve(&c, &scope(), |k| k == "Secret").unwrap();
        assert_eq!(out["Secret"], "#{variables.Env}");
    }

    #[test]
    fn start_values_override_defaults_and_must_be_declared() {
        let declared: Vec<VariableDeclaration> = serde_json::from_value(serde_json::json!([
            {"name": "Env", "defaultValue": "prod"},
            {"name": "Region", "defaultValue": "local"},
            {"name": "Ticket"}
        ]))
        .unwrap();
        let given = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let values =
            start_variables(&declared, &given(&[("Env", "staging"), ("Ticket", "T-1")])).unwrap();
        assert_eq!(
            values,
            BTreeMap::from([
                ("Env".into(), "staging".into()),
                ("Region".into(), "local".into()),
                ("Ticket".into(), "T-1".into())
            ])
        );
        for (bad, why) in [
            (
                given(&[("Ticket", "T"), ("Nope", "x")]),
                "declares no variable Nope",
            ),
            (given(&[("Ticket", "")]), "1-1000"),
            (given(&[("Ticket", "a"), ("Ticket", "b")]), "twice"),
            (given(&[]), "Ticket has no default"),
        ] {
            let err = start_variables(&declared, &bad).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }
}
