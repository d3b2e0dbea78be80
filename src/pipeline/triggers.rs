//! Whether a change of a Git source starts the pipeline: V2 `triggers` (push filters on branches,
//! tags and file paths; pull-request filters on events, target branches and file paths), or,
//! without a trigger for the action, a push to the branch the action builds. Pure.
//!
//! Patterns are CodePipeline's globs: `*` any characters within one path segment, `**` any
//! characters across `/`, `?` one character. A value passes a filter when it matches one of its
//! includes (any value, without includes) and none of its excludes: an exclude wins.

use super::wire::{GitConfiguration, PatternFilter, PipelineDeclaration};

/// What happened at the repository, as a host's webhook said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Push {
        /// The pushed ref: a branch or a tag.
        target: Ref,
        /// The commit the ref points at now (`None`: the ref was deleted).
        commit: Option<String>,
        /// Files the pushed commits added, changed or removed (`None`: the host did not say).
        files: Option<Vec<String>>,
    },
    PullRequest {
        event: PullRequestEvent,
        /// The branch the pull request goes into.
        target_branch: String,
        /// The head commit of its source branch.
        commit: String,
        files: Option<Vec<String>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Branch(String),
    Tag(String),
}

/// CodePipeline's pull-request events (CLOSED means merged; other events are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRequestEvent {
    Open,
    Updated,
    Closed,
}

impl PullRequestEvent {
    fn name(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Updated => "UPDATED",
            Self::Closed => "CLOSED",
        }
    }
}

/// The longest ref or path a pattern is matched against.
const MAX_TEXT: usize = 4096;

/// Whether the pattern matches the whole of `text`. Memoized over (pattern, text) positions, so
/// any pattern costs at most their product.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Git refs and paths are far shorter; a longer text matches nothing.
    if t.len() > MAX_TEXT {
        return false;
    }
    let mut memo = vec![None; (p.len() + 1) * (t.len() + 1)];
    Glob {
        p: &p,
        t: &t,
        memo: &mut memo,
    }
    .at(0, 0)
}

struct Glob<'a> {
    p: &'a [char],
    t: &'a [char],
    memo: &'a mut [Option<bool>],
}

impl Glob<'_> {
    fn at(&mut self, pi: usize, ti: usize) -> bool {
        let slot = pi * (self.t.len() + 1) + ti;
        if let Some(known) = self.memo[slot] {
            return known;
        }
        let (p, t) = (self.p, self.t);
        let found = match p.get(pi) {
            None => ti == t.len(),
            Some('*') if p.get(pi + 1) == Some(&'*') => {
                let rest = pi + 2;
                // `**/` also matches nothing at all (`src/**/x` matches `src/x`).
                (p.get(rest) == Some(&'/') && self.at(rest + 1, ti))
                    || (ti..=t.len()).any(|i| self.at(rest, i))
            }
            Some('*') => {
                let mut found = false;
                for i in ti..=t.len() {
                    if self.at(pi + 1, i) {
                        found = true;
                        break;
                    }
                    if t.get(i) == Some(&'/') {
                        break;
                    }
                }
                found
            }
            Some('?') => t.get(ti).is_some_and(|c| *c != '/') && self.at(pi + 1, ti + 1),
            Some(c) => t.get(ti) == Some(c) && self.at(pi + 1, ti + 1),
        };
        self.memo[slot] = Some(found);
        found
    }
}

/// Whether `value` passes the filter.
pub fn passes(filter: &PatternFilter, value: &str) -> bool {
    let included = filter
        .includes
        .as_ref()
        .is_none_or(|inc| inc.iter().any(|p| glob(p, value)));
    let excluded = filter
        .excludes
        .as_ref()
        .is_some_and(|exc| exc.iter().any(|p| glob(p, value)));
    included && !excluded
}

/// Whether changed files pass a file-path filter: one of them does. Unknown files (a host that
/// does not list them) pass, so that a trigger never misses a change it cannot see.
fn files_pass(filter: Option<&PatternFilter>, files: Option<&Vec<String>>) -> bool {
    match (filter, files) {
        (None, _) | (Some(_), None) => true,
        (Some(f), Some(files)) => files.iter().any(|file| passes(f, file)),
    }
}

/// What starts, if anything: the commit the execution's run of `action` checks out.
pub fn start_for(decl: &PipelineDeclaration, action: &str, change: &Change) -> Option<String> {
    let trigger = decl
        .triggers
        .iter()
        .flatten()
        .find(|t| t.git_configuration.source_action_name == action);
    match trigger {
        Some(t) => by_trigger(&t.git_configuration, change),
        None => {
            // No trigger: a push to the branch the action builds.
            let branch = decl
                .stages
                .iter()
                .flat_map(|s| &s.actions)
                .find(|a| a.name == action)?
                .configuration
                .as_ref()?
                .get("Branch")?;
            match change {
                Change::Push {
                    target: Ref::Branch(b),
                    commit: Some(commit),
                    ..
                } if b == branch => Some(commit.clone()),
                _ => None,
            }
        }
    }
}

fn by_trigger(g: &GitConfiguration, change: &Change) -> Option<String> {
    match change {
        Change::Push {
            target,
            commit: Some(commit),
            files,
        } => {
            let any = g.push.iter().flatten().any(|f| {
                let ref_passes = match (target, &f.tags, &f.branches) {
                    (Ref::Tag(tag), Some(tags), _) => passes(tags, tag),
                    (Ref::Branch(branch), None, Some(branches)) => passes(branches, branch),
                    _ => false,
                };
                ref_passes && files_pass(f.file_paths.as_ref(), files.as_ref())
            });
            any.then(|| commit.clone())
        }
        Change::Push { commit: None, .. } => None,
        Change::PullRequest {
            event,
            target_branch,
            commit,
            files,
        } => {
            let any = g.pull_request.iter().flatten().any(|f| {
                let event_passes = f
                    .events
                    .as_ref()
                    .is_none_or(|events| events.iter().any(|e| e == event.name()));
                event_passes
                    && f.branches
                        .as_ref()
                        .is_some_and(|b| passes(b, target_branch))
                    && files_pass(f.file_paths.as_ref(), files.as_ref())
            });
            any.then(|| commit.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn globs_are_codepipelines() {
        for (pattern, text, expected) in [
            ("main", "main", true),
            ("main", "main2", false),
            ("release/*", "release/1.0", true),
            ("release/*", "release/1.0/hotfix", false),
            ("release/**", "release/1.0/hotfix", true),
            ("**", "any/thing/at/all", true),
            ("src/**/*.rs", "src/a/b/c.rs", true),
            ("src/**/*.rs", "src/c.rs", true),
            ("src/**/*.rs", "src/c.py", false),
            ("*.md", "README.md", true),
            ("*.md", "docs/README.md", false),
            ("**/*.md", "docs/README.md", true),
            ("v?.0", "v1.0", true),
            ("v?.0", "v10.0", false),
            ("v?", "v/", false),
            ("feature-*", "feature-", true),
            ("", "", true),
            ("", "x", false),
            ("€*", "€uro", true),
            // Many stars against a long text that almost matches stay cheap.
            (&"**a".repeat(80), &"a".repeat(79), false),
        ] {
            assert_eq!(glob(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn an_exclude_wins_and_no_includes_means_any() {
        let f = |inc: Option<Vec<&str>>, exc: Option<Vec<&str>>| PatternFilter {
            includes: inc.map(|v| v.into_iter().map(String::from).collect()),
            excludes: exc.map(|v| v.into_iter().map(String::from).collect()),
        };
        assert!(passes(&f(None, None), "x"));
        assert!(passes(&f(Some(vec!["main", "dev"]), None), "dev"));
        assert!(!passes(&f(Some(vec!["main"]), None), "dev"));
        assert!(!passes(
            &f(Some(vec!["**"]), Some(vec!["docs/**"])),
            "docs/a.md"
        ));
        assert!(passes(&f(None, Some(vec!["docs/**"])), "src/a.rs"));
    }

    fn decl(triggers: serde_json::Value) -> PipelineDeclaration {
        serde_json::from_value(json!({
            "name": "p", "pipelineType": "V2", "triggers": triggers,
            "stages": [{"name": "Source", "actions": [{"name": "Checkout",
                "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
                "configuration": {"RepositoryUrl": "/r", "Branch": "main"},
                "outputArtifacts": [{"name": "Src"}]}]}]
        }))
        .unwrap()
    }

    fn push(branch: &str, files: &[&str]) -> Change {
        Change::Push {
            target: Ref::Branch(branch.into()),
            commit: Some("abc1234".into()),
            files: Some(files.iter().map(|f| f.to_string()).collect()),
        }
    }

    #[test]
    fn without_a_trigger_a_push_to_the_actions_branch_starts() {
        let d = decl(json!([]));
        assert_eq!(
            start_for(&d, "Checkout", &push("main", &["a"])),
            Some("abc1234".into())
        );
        assert_eq!(start_for(&d, "Checkout", &push("dev", &["a"])), None);
        assert_eq!(start_for(&d, "Other", &push("main", &["a"])), None);
        let deleted = Change::Push {
            target: Ref::Branch("main".into()),
            commit: None,
            files: None,
        };
        assert_eq!(start_for(&d, "Checkout", &deleted), None);
        let tag = Change::Push {
            target: Ref::Tag("main".into()),
            commit: Some("abc1234".into()),
            files: None,
        };
        assert_eq!(start_for(&d, "Checkout", &tag), None);
    }

    #[test]
    fn push_filters_are_ored_and_their_criteria_anded() {
        let d = decl(
            json!([{"providerType": "CodeStarSourceConnection", "gitConfiguration": {
            "sourceActionName": "Checkout",
            "push": [
                {"branches": {"includes": ["main", "release/**"]},
                 "filePaths": {"includes": ["src/**"], "excludes": ["src/docs/**"]}},
                {"tags": {"includes": ["v*"], "excludes": ["v0.*"]}}
            ]}}]),
        );
        let starts = |c: &Change| start_for(&d, "Checkout", c).is_some();
        assert!(starts(&push("main", &["src/lib.rs"])));
        assert!(starts(&push("release/2/hotfix", &["README", "src/x"])));
        assert!(!starts(&push("main", &["src/docs/a.md"])), "excluded path");
        assert!(!starts(&push("main", &["README"])));
        assert!(!starts(&push("dev", &["src/lib.rs"])));
        assert!(!starts(&push("main", &[])));
        let tag = |t: &str| Change::Push {
            target: Ref::Tag(t.into()),
            commit: Some("abc1234".into()),
            files: None,
        };
        assert!(starts(&tag("v1.2")));
        assert!(!starts(&tag("v0.9")));
        assert!(!starts(&tag("latest")));
        // Unknown files pass a path filter.
        let unknown = Change::Push {
            target: Ref::Branch("main".into()),
            commit: Some("abc1234".into()),
            files: None,
        };
        assert!(starts(&unknown));
    }

    #[test]
    fn pull_request_filters_match_events_target_branches_and_paths() {
        let d = decl(
            json!([{"providerType": "CodeStarSourceConnection", "gitConfiguration": {
            "sourceActionName": "Checkout",
            "pullRequest": [{"events": ["OPEN", "UPDATED"], "branches": {"includes": ["main"]}}]}}]),
        );
        let pr = |event, target: &str| Change::PullRequest {
            event,
            target_branch: target.into(),
            commit: "def5678".into(),
            files: None,
        };
        assert_eq!(
            start_for(&d, "Checkout", &pr(PullRequestEvent::Open, "main")),
            Some("def5678".into())
        );
        assert!(start_for(&d, "Checkout", &pr(PullRequestEvent::Updated, "main")).is_some());
        assert!(start_for(&d, "Checkout", &pr(PullRequestEvent::Closed, "main")).is_none());
        assert!(start_for(&d, "Checkout", &pr(PullRequestEvent::Open, "dev")).is_none());
        // A trigger with pull-request filters only: pushes start nothing.
        assert!(start_for(&d, "Checkout", &push("main", &["a"])).is_none());
    }

    proptest! {
        /// `**` matches anything; a literal pattern matches only itself; excluding what is
        /// included always refuses.
        #[test]
        fn glob_properties(text in "[a-z/.]{0,20}") {
            prop_assert!(glob("**", &text));
            prop_assert!(glob(&text, &text));
            let f = PatternFilter { includes: Some(vec!["**".into()]), excludes: Some(vec![text.clone()]) };
            prop_assert!(!passes(&f, &text));
            if !text.contains('/') {
                prop_assert!(glob("*", &text));
            }
        }
    }
}
