//! CodeDeploy's AppSpec file (`appspec.yml` at the root of a revision), as a directory deploy
//! reads it: `version: 0.0`, `os: linux`, and the `hooks` a release runs at each lifecycle event,
//! each with its `location` (a script in the revision), `timeout` (seconds, at most 3600, the
//! default) and `runas`. `files` and `permissions` are CodeDeploy's way of copying a revision
//! into place; here the whole revision is the release, so they are noted and not used. Pure:
//! the text in, the spec or the first problem out.

use std::time::Duration;

use serde_yaml_ng::Value;

/// The lifecycle events a directory deploy runs, in the order it runs them (CodeDeploy's
/// in-place order; `Install` is the switch of the `current` link, which has no hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hook {
    /// Run from the release being replaced, with its own AppSpec, before anything else.
    ApplicationStop,
    BeforeInstall,
    AfterInstall,
    ApplicationStart,
    ValidateService,
}

impl Hook {
    pub const ALL: [Hook; 5] = [
        Hook::ApplicationStop,
        Hook::BeforeInstall,
        Hook::AfterInstall,
        Hook::ApplicationStart,
        Hook::ValidateService,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Hook::ApplicationStop => "ApplicationStop",
            Hook::BeforeInstall => "BeforeInstall",
            Hook::AfterInstall => "AfterInstall",
            Hook::ApplicationStart => "ApplicationStart",
            Hook::ValidateService => "ValidateService",
        }
    }
}

/// CodeDeploy's limit, and its default, for one script.
pub const MAX_TIMEOUT_SECONDS: u64 = 3600;

/// One script a hook runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookScript {
    /// Relative to the release's root, inside it (no `..`, not absolute).
    pub location: String,
    pub timeout: Duration,
    /// The user it asks to run as, if it names one.
    pub runas: Option<String>,
}

/// What a release's AppSpec asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppSpec {
    /// The scripts of each hook, in order; hooks without scripts are left out.
    pub hooks: Vec<(Hook, Vec<HookScript>)>,
    /// Sections read and not used (`files`, `permissions`), for the log.
    pub ignored: Vec<&'static str>,
}

impl AppSpec {
    pub fn scripts(&self, hook: Hook) -> &[HookScript] {
        self.hooks
            .iter()
            .find(|(h, _)| *h == hook)
            .map_or(&[], |(_, scripts)| scripts.as_slice())
    }
}

/// Hooks of CodeDeploy's that belong to load balancers or other platforms: named in the error,
/// so someone porting an AppSpec learns why it is refused.
const NOT_HERE: &[&str] = &[
    "BeforeBlockTraffic",
    "AfterBlockTraffic",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
    "BeforeAllowTestTraffic",
    "AfterAllowTestTraffic",
];

pub fn parse(text: &str) -> Result<AppSpec, String> {
    let doc: Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("appspec.yml is not valid YAML: {e}"))?;
    let Value::Mapping(top) = doc else {
        return Err("appspec.yml must be a mapping (version, os, hooks)".into());
    };
    let mut spec = AppSpec::default();
    let mut version = None;
    for (key, value) in &top {
        let key = key
            .as_str()
            .ok_or("appspec.yml: every top-level key must be a name")?;
        match key {
            "version" => version = Some(value),
            "os" => {
                if value.as_str() != Some("linux") {
                    return Err("appspec.yml: os must be linux".into());
                }
            }
            "hooks" => spec.hooks = hooks(value)?,
            "files" => spec.ignored.push("files"),
            "permissions" => spec.ignored.push("permissions"),
            "resources" => {
                return Err(
                    "appspec.yml: resources is for Lambda and ECS deployments; a directory deploy takes hooks"
                        .into(),
                );
            }
            other => return Err(format!("appspec.yml: unknown key {other}")),
        }
    }
    let version_ok = match version {
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::String(s)) => s == "0.0",
        _ => false,
    };
    if !version_ok {
        return Err("appspec.yml: version must be 0.0".into());
    }
    Ok(spec)
}

fn hooks(value: &Value) -> Result<Vec<(Hook, Vec<HookScript>)>, String> {
    let Value::Mapping(map) = value else {
        return Err("appspec.yml: hooks must map lifecycle events to lists of scripts".into());
    };
    let mut hooks = Vec::new();
    for (name, scripts) in map {
        let name = name.as_str().unwrap_or_default();
        let Some(hook) = Hook::ALL.into_iter().find(|h| h.name() == name) else {
            let known = Hook::ALL.map(Hook::name).join(", ");
            return Err(if NOT_HERE.contains(&name) {
                format!(
                    "appspec.yml: {name} is a load balancer's hook; a directory deploy runs {known}"
                )
            } else {
                format!("appspec.yml: unknown hook {name:?}; the hooks are {known}")
            });
        };
        let scripts = match scripts {
            Value::Null => Vec::new(),
            Value::Sequence(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    script(item).map_err(|why| format!("appspec.yml: hooks.{name}[{i}]: {why}"))
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(format!(
                    "appspec.yml: hooks.{name} must be a list of scripts"
                ));
            }
        };
        if hooks.iter().any(|(h, _)| *h == hook) {
            return Err(format!("appspec.yml: hooks.{name} is given twice"));
        }
        if !scripts.is_empty() {
            hooks.push((hook, scripts));
        }
    }
    hooks.sort_by_key(|(h, _)| *h);
    Ok(hooks)
}

fn script(item: &Value) -> Result<HookScript, String> {
    let Value::Mapping(map) = item else {
        return Err("each script is a mapping with a location".into());
    };
    let mut location = None;
    let mut timeout = Duration::from_secs(MAX_TIMEOUT_SECONDS);
    let mut runas = None;
    for (key, value) in map {
        match key.as_str().unwrap_or_default() {
            "location" => {
                let text = value.as_str().ok_or("location must be a path")?;
                location = Some(relative_location(text)?);
            }
            "timeout" => {
                let seconds = match value {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                }
                .filter(|s| (1..=MAX_TIMEOUT_SECONDS).contains(s))
                .ok_or(format!(
                    "timeout must be a number of seconds from 1 to {MAX_TIMEOUT_SECONDS}"
                ))?;
                timeout = Duration::from_secs(seconds);
            }
            "runas" => {
                let user = value.as_str().ok_or("runas must be a user name")?.trim();
                if user.is_empty() {
                    return Err("runas must be a user name".into());
                }
                runas = Some(user.to_string());
            }
            other => return Err(format!("unknown key {other} (location, timeout, runas)")),
        }
    }
    Ok(HookScript {
        location: location.ok_or("location is required")?,
        timeout,
        runas,
    })
}

/// A script's place in the release: relative, normalized, never leaving it.
fn relative_location(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("location must be a path".into());
    }
    if text.starts_with('/') {
        return Err(format!(
            "location {text} must be relative to the revision's root, not absolute"
        ));
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("location {text} must stay inside the revision")),
            part if part.contains('\0') => return Err("location must be a path".into()),
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err("location must name a file".into());
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_codedeploy_appspec_reads_in_lifecycle_order() {
        let spec = parse(
            "version: 0.0\nos: linux\nfiles:\n  - source: /\n    destination: /srv/app\n\
             hooks:\n  ValidateService:\n    - location: scripts/check.sh\n      timeout: 30\n\
             \x20 BeforeInstall:\n    - location: ./scripts/stop.sh\n      runas: deploy\n\
             \x20   - location: scripts//more.sh\n      timeout: \"60\"\n  AfterInstall:\n",
        )
        .unwrap();
        assert_eq!(
            spec.hooks.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
            vec![Hook::BeforeInstall, Hook::ValidateService]
        );
        assert_eq!(
            spec.scripts(Hook::BeforeInstall),
            &[
                HookScript {
                    location: "scripts/stop.sh".into(),
                    timeout: Duration::from_secs(3600),
                    runas: Some("deploy".into()),
                },
                HookScript {
                    location: "scripts/more.sh".into(),
                    timeout: Duration::from_secs(60),
                    runas: None,
                },
            ]
        );
        assert_eq!(
            spec.scripts(Hook::ValidateService)[0].timeout,
            Duration::from_secs(30)
        );
        assert!(spec.scripts(Hook::ApplicationStart).is_empty());
        assert_eq!(spec.ignored, vec!["files"]);
        // A string version, and no hooks at all, are fine too.
        assert_eq!(
            parse("version: '0.0'\nos: linux\n").unwrap(),
            AppSpec::default()
        );
    }

    #[test]
    fn every_malformed_appspec_says_what_is_wrong() {
        let cases = [
            ("version: [", "not valid YAML"),
            ("- a\n- b\n", "must be a mapping"),
            ("os: linux\n", "version must be 0.0"),
            ("version: 1.0\n", "version must be 0.0"),
            ("version: 0.0\nos: windows\n", "os must be linux"),
            ("version: 0.0\nfoo: 1\n", "unknown key foo"),
            ("version: 0.0\nresources: []\n", "resources is for Lambda"),
            ("version: 0.0\nhooks: [a]\n", "hooks must map"),
            (
                "version: 0.0\nhooks:\n  Install:\n    - location: a\n",
                "unknown hook \"Install\"",
            ),
            (
                "version: 0.0\nhooks:\n  BeforeAllowTraffic:\n    - location: a\n",
                "load balancer's hook",
            ),
            (
                "version: 0.0\nhooks:\n  BeforeInstall: a.sh\n",
                "must be a list",
            ),
            (
                "version: 0.0\nhooks:\n  BeforeInstall:\n    - a.sh\n",
                "hooks.BeforeInstall[0]: each script is a mapping",
            ),
            (
                "version: 0.0\nhooks:\n  BeforeInstall:\n    - timeout: 5\n",
                "location is required",
            ),
            (
                "version: 0.0\nhooks:\n  BeforeInstall:\n    - location: /etc/x\n",
                "not absolute",
            ),
            (
                "version: 0.0\nhooks:\n  BeforeInstall:\n    - location: a/../../x\n",
                "stay inside",
            ),
            (
                "version: 0.0\nhooks:\n  BeforeInstall:\n    - location: ./\n",
                "must name a file",
            ),
            (
                "version: 0.0\nhooks:\n  BeforeInstall:\n    - location: a\n      timeout: 0\n",
                "from 1 to 3600",
            ),
            (
                "version: 0.0\nhooks:\n  BeforeInstall:\n    - location: a\n      timeout: 3601\n",
                "from 1 to 3600",
            ),
            (
                "version: 0.0\nhooks:\n  BeforeInstall:\n    - location: a\n      timeout: soon\n",
                "from 1 to 3600",
            ),
            (
                "version: 0.0\nhooks:\n  BeforeInstall:\n    - location: a\n      runas: ''\n",
                "runas must be a user name",
            ),
            (
                "version: 0.0\nhooks:\n  BeforeInstall:\n    - location: a\n      shell: zsh\n",
                "unknown key shell",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
