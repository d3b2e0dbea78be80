//! Push webhooks as GitHub, GitLab, Gitea/Forgejo and Bitbucket send them: which host sent a
//! delivery, whether its signature is the hook secret's (each host's own scheme), and what
//! changed ([`triggers::Change`]). Pure: headers come through a lookup function.
//!
//! | host | told by | signature | delivery id |
//! |---|---|---|---|
//! | Gitea, Forgejo | `X-Gitea-Event` / `X-Forgejo-Event` | `X-Gitea-Signature` / `X-Forgejo-Signature`: hex HMAC-SHA256 of the body | `X-Gitea-Delivery` / `X-Forgejo-Delivery` |
//! | GitLab | `X-Gitlab-Event` | `X-Gitlab-Token`: the secret itself | `X-Gitlab-Event-UUID` |
//! | Bitbucket | `X-Event-Key` | `X-Hub-Signature`: `sha256=` hex HMAC | `X-Request-UUID` |
//! | GitHub | `X-GitHub-Event` | `X-Hub-Signature-256`: `sha256=` hex HMAC | `X-GitHub-Delivery` |
//!
//! Gitea also sends GitHub's headers, so it is recognised first.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::triggers::{Change, PullRequestEvent, Ref};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    GitHub,
    GitLab,
    Gitea,
    Bitbucket,
}

impl Host {
    pub fn name(self) -> &'static str {
        match self {
            Host::GitHub => "GitHub",
            Host::GitLab => "GitLab",
            Host::Gitea => "Gitea/Forgejo",
            Host::Bitbucket => "Bitbucket",
        }
    }
}

/// A header's value by its (case-insensitive) name.
pub type Headers<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Which host sent the delivery, by the headers only it sends.
pub fn host_of(headers: Headers<'_>) -> Option<Host> {
    if headers("X-Gitea-Event").is_some() || headers("X-Forgejo-Event").is_some() {
        Some(Host::Gitea)
    } else if headers("X-Gitlab-Event").is_some() {
        Some(Host::GitLab)
    } else if headers("X-Event-Key").is_some() {
        Some(Host::Bitbucket)
    } else if headers("X-GitHub-Event").is_some() {
        Some(Host::GitHub)
    } else {
        None
    }
}

/// Whether the delivery carries the secret's signature (compared in constant time).
pub fn verify(host: Host, headers: Headers<'_>, body: &[u8], secret: &str) -> bool {
    let hex_mac = |given: &str| -> bool {
        let Some(given) = decode_hex(given.trim()) else {
            return false;
        };
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(body);
        mac.verify_slice(&given).is_ok()
    };
    match host {
        Host::GitHub => headers("X-Hub-Signature-256")
            .and_then(|s| s.strip_prefix("sha256=").map(str::to_string))
            .is_some_and(|s| hex_mac(&s)),
        Host::Bitbucket => headers("X-Hub-Signature")
            .and_then(|s| s.strip_prefix("sha256=").map(str::to_string))
            .is_some_and(|s| hex_mac(&s)),
        Host::Gitea => headers("X-Gitea-Signature")
            .or_else(|| headers("X-Forgejo-Signature"))
            .is_some_and(|s| hex_mac(&s)),
        Host::GitLab => headers("X-Gitlab-Token").is_some_and(|token| {
            // Constant time: compare MACs of both under a fixed key.
            let tag = |t: &[u8]| {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"sluice gitlab token")
                    .expect("any key length");
                mac.update(t);
                mac.finalize().into_bytes()
            };
            let expected = tag(secret.as_bytes());
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"sluice gitlab token")
                .expect("any key length");
            mac.update(token.as_bytes());
            mac.verify_slice(&expected).is_ok()
        }),
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The delivery's id, as the host named it.
pub fn delivery_id(host: Host, headers: Headers<'_>) -> Option<String> {
    let id = match host {
        Host::GitHub => headers("X-GitHub-Delivery"),
        Host::GitLab => headers("X-Gitlab-Event-UUID").or_else(|| headers("Idempotency-Key")),
        Host::Gitea => headers("X-Gitea-Delivery").or_else(|| headers("X-Forgejo-Delivery")),
        Host::Bitbucket => headers("X-Request-UUID").or_else(|| headers("X-Hook-UUID")),
    }?;
    let id = id.trim();
    (!id.is_empty() && id.len() <= 200).then(|| id.to_string())
}

/// What a delivery says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// The host checking the hook (GitHub's and Gitea's `ping`).
    Ping,
    /// Changes of the repository.
    Changes(Vec<Change>),
    /// An event that starts nothing (its name).
    Other(String),
}

/// Reads a verified delivery.
pub fn read(host: Host, headers: Headers<'_>, body: &[u8]) -> Result<Said, String> {
    let event = match host {
        Host::GitHub => headers("X-GitHub-Event"),
        Host::GitLab => headers("X-Gitlab-Event"),
        Host::Gitea => headers("X-Gitea-Event").or_else(|| headers("X-Forgejo-Event")),
        Host::Bitbucket => headers("X-Event-Key"),
    }
    .unwrap_or_default();
    let event = event.trim().to_string();
    let payload = || -> Result<Value, String> {
        serde_json::from_slice(body).map_err(|_| "the payload is not JSON".to_string())
    };
    match (host, event.as_str()) {
        (Host::GitHub | Host::Gitea, "ping") => Ok(Said::Ping),
        (Host::GitHub | Host::Gitea, "push") | (Host::GitLab, "Push Hook" | "Tag Push Hook") => {
            Ok(Said::Changes(vec![push_like(&payload()?)?]))
        }
        (Host::GitHub | Host::Gitea, "pull_request") => {
            Ok(pull_request_like(&payload()?)?
                .map_or(Said::Other(event), |c| Said::Changes(vec![c])))
        }
        (Host::GitLab, "Merge Request Hook") => Ok(gitlab_merge_request(&payload()?)?
            .map_or(Said::Other(event), |c| Said::Changes(vec![c]))),
        (Host::Bitbucket, "repo:push") => Ok(Said::Changes(bitbucket_push(&payload()?)?)),
        (
            Host::Bitbucket,
            "pullrequest:created" | "pullrequest:updated" | "pullrequest:fulfilled",
        ) => Ok(Said::Changes(vec![bitbucket_pull_request(
            &event,
            &payload()?,
        )?])),
        _ => Ok(Said::Other(event.chars().take(100).collect())),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut at = v;
    for key in path {
        at = at.get(key)?;
    }
    at.as_str()
}

/// A commit id, or `None` for the all-zero id hosts send for a deleted ref.
fn commit_of(text: Option<&str>) -> Result<Option<String>, String> {
    match text {
        None => Ok(None),
        Some(id) if id.chars().all(|c| c == '0') => Ok(None),
        Some(id) if (7..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_hexdigit()) => {
            Ok(Some(id.to_ascii_lowercase()))
        }
        Some(_) => Err("the payload's commit is not a commit id".into()),
    }
}

fn ref_of(full: &str) -> Result<Ref, String> {
    if let Some(branch) = full.strip_prefix("refs/heads/") {
        Ok(Ref::Branch(branch.to_string()))
    } else if let Some(tag) = full.strip_prefix("refs/tags/") {
        Ok(Ref::Tag(tag.to_string()))
    } else {
        Err("the payload's ref is neither a branch nor a tag".into())
    }
}

/// Every file the push's commits added, modified or removed (`None` without a commit list).
fn files_of(v: &Value) -> Option<Vec<String>> {
    let commits = v.get("commits")?.as_array()?;
    let mut files = Vec::new();
    for c in commits {
        for kind in ["added", "modified", "removed"] {
            for f in c.get(kind).and_then(Value::as_array).into_iter().flatten() {
                if let Some(f) = f.as_str()
                    && !files.iter().any(|known| known == f)
                {
                    files.push(f.to_string());
                }
            }
        }
    }
    Some(files)
}

/// GitHub's, Gitea's and GitLab's push: `ref`, `after`, `commits[].added|modified|removed`.
fn push_like(v: &Value) -> Result<Change, String> {
    let target = ref_of(str_at(v, &["ref"]).ok_or("the payload has no ref")?)?;
    let deleted = v.get("deleted").and_then(Value::as_bool) == Some(true);
    let commit = if deleted {
        None
    } else {
        commit_of(str_at(v, &["after"]).or_else(|| str_at(v, &["checkout_sha"])))?
    };
    Ok(Change::Push {
        target,
        commit,
        files: files_of(v),
    })
}

/// GitHub's and Gitea's pull_request: opened/reopened → OPEN, synchronize(d) → UPDATED, closed
/// and merged → CLOSED; others start nothing.
fn pull_request_like(v: &Value) -> Result<Option<Change>, String> {
    let merged = v
        .get("pull_request")
        .and_then(|p| p.get("merged"))
        .and_then(Value::as_bool)
        == Some(true);
    let event = match str_at(v, &["action"]).unwrap_or_default() {
        "opened" | "reopened" => PullRequestEvent::Open,
        "synchronize" | "synchronized" => PullRequestEvent::Updated,
        "closed" if merged => PullRequestEvent::Closed,
        _ => return Ok(None),
    };
    Ok(Some(Change::PullRequest {
        event,
        target_branch: str_at(v, &["pull_request", "base", "ref"])
            .ok_or("the payload has no base branch")?
            .to_string(),
        commit: commit_of(str_at(v, &["pull_request", "head", "sha"]))?
            .ok_or("the payload has no head commit")?,
        files: None,
    }))
}

fn gitlab_merge_request(v: &Value) -> Result<Option<Change>, String> {
    let event = match str_at(v, &["object_attributes", "action"]).unwrap_or_default() {
        "open" | "reopen" => PullRequestEvent::Open,
        "update" => PullRequestEvent::Updated,
        "merge" => PullRequestEvent::Closed,
        _ => return Ok(None),
    };
    Ok(Some(Change::PullRequest {
        event,
        target_branch: str_at(v, &["object_attributes", "target_branch"])
            .ok_or("the payload has no target branch")?
            .to_string(),
        commit: commit_of(str_at(v, &["object_attributes", "last_commit", "id"]))?
            .ok_or("the payload has no last commit")?,
        files: None,
    }))
}

/// Bitbucket's push: `push.changes[].new` (a branch or tag with its target commit; `null` for a
/// deleted ref). Bitbucket lists no files.
fn bitbucket_push(v: &Value) -> Result<Vec<Change>, String> {
    let changes = v
        .get("push")
        .and_then(|p| p.get("changes"))
        .and_then(Value::as_array)
        .ok_or("the payload has no push.changes")?;
    let mut out = Vec::new();
    for c in changes {
        let Some(new) = c.get("new").filter(|n| !n.is_null()) else {
            continue;
        };
        let name = str_at(new, &["name"])
            .ok_or("a change has no name")?
            .to_string();
        let target = match str_at(new, &["type"]) {
            Some("branch") => Ref::Branch(name),
            Some("tag") => Ref::Tag(name),
            _ => continue,
        };
        out.push(Change::Push {
            target,
            commit: commit_of(str_at(new, &["target", "hash"]))?,
            files: None,
        });
    }
    Ok(out)
}

fn bitbucket_pull_request(event: &str, v: &Value) -> Result<Change, String> {
    let event = match event {
        "pullrequest:created" => PullRequestEvent::Open,
        "pullrequest:updated" => PullRequestEvent::Updated,
        _ => PullRequestEvent::Closed,
    };
    Ok(Change::PullRequest {
        event,
        target_branch: str_at(v, &["pullrequest", "destination", "branch", "name"])
            .ok_or("the payload has no destination branch")?
            .to_string(),
        commit: commit_of(str_at(v, &["pullrequest", "source", "commit", "hash"]))?
            .ok_or("the payload has no source commit")?,
        files: None,
    })
}

/// The signature headers a host would send for `body` under `secret` (for tests and the docs).
pub fn signed_headers(host: Host, secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let hex = || {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    match host {
        Host::GitHub => vec![("X-Hub-Signature-256", format!("sha256={}", hex()))],
        Host::Bitbucket => vec![("X-Hub-Signature", format!("sha256={}", hex()))],
        Host::Gitea => vec![("X-Gitea-Signature", hex())],
        Host::GitLab => vec![("X-Gitlab-Token", secret.to_string())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lookup(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        }
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn each_hosts_signature_verifies_and_any_other_does_not() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        for (host, event) in [
            (Host::GitHub, ("X-GitHub-Event", "push")),
            (Host::GitLab, ("X-Gitlab-Event", "Push Hook")),
            (Host::Gitea, ("X-Gitea-Event", "push")),
            (Host::Bitbucket, ("X-Event-Key", "repo:push")),
        ] {
            let mut pairs = signed_headers(host, "s3cret", body);
            pairs.push((event.0, event.1.to_string()));
            // Gitea also sends GitHub's headers.
            if host == Host::Gitea {
                pairs.push(("X-GitHub-Event", "push".into()));
            }
            let h = lookup(pairs.clone());
            assert_eq!(host_of(&h), Some(host));
            assert!(verify(host, &h, body, "s3cret"), "{host:?}");
            assert!(!verify(host, &h, body, "other"), "{host:?}: another secret");
            // GitLab's token is the secret itself: it does not cover the body.
            if host != Host::GitLab {
                assert!(!verify(host, &h, b"{}", "s3cret"), "{host:?}: another body");
            }
            let unsigned = lookup(vec![(event.0, event.1.to_string())]);
            assert!(
                !verify(host, &unsigned, body, "s3cret"),
                "{host:?}: unsigned"
            );
        }
        let junk = lookup(vec![
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", "sha256=zz".into()),
        ]);
        assert!(!verify(Host::GitHub, &junk, b"", "s"));
        assert_eq!(host_of(&lookup(vec![])), None);
    }

    #[test]
    fn pushes_of_each_host_read_as_changes() {
        let github = json!({"ref": "refs/heads/main", "after": SHA,
            "commits": [{"added": ["a.rs"], "modified": ["b.rs"], "removed": []},
                        {"added": [], "modified": ["b.rs", "c/d.md"], "removed": ["e"]}]});
        let h = lookup(vec![("X-GitHub-Event", "push".into())]);
        assert_eq!(
            read(Host::GitHub, &h, github.to_string().as_bytes()),
            Ok(Said::Changes(vec![Change::Push {
                target: Ref::Branch("main".into()),
                commit: Some(SHA.into()),
                files: Some(vec![
                    "a.rs".into(),
                    "b.rs".into(),
                    "c/d.md".into(),
                    "e".into()
                ]),
            }]))
        );
        let gitlab_tag =
            json!({"ref": "refs/tags/v1.0", "after": SHA, "checkout_sha": SHA, "commits": []});
        let h = lookup(vec![("X-Gitlab-Event", "Tag Push Hook".into())]);
        assert_eq!(
            read(Host::GitLab, &h, gitlab_tag.to_string().as_bytes()),
            Ok(Said::Changes(vec![Change::Push {
                target: Ref::Tag("v1.0".into()),
                commit: Some(SHA.into()),
                files: Some(vec![]),
            }]))
        );
        let deleted =
            json!({"ref": "refs/heads/old", "after": "0000000000000000000000000000000000000000"});
        let h = lookup(vec![("X-Gitea-Event", "push".into())]);
        assert!(matches!(
            read(Host::Gitea, &h, deleted.to_string().as_bytes()),
            Ok(Said::Changes(c)) if matches!(c[0], Change::Push { commit: None, .. })
        ));
        let bitbucket = json!({"push": {"changes": [
            {"new": {"type": "branch", "name": "main", "target": {"hash": SHA}}, "old": null},
            {"new": null, "old": {"type": "branch", "name": "gone"}}]}});
        let h = lookup(vec![("X-Event-Key", "repo:push".into())]);
        assert_eq!(
            read(Host::Bitbucket, &h, bitbucket.to_string().as_bytes()),
            Ok(Said::Changes(vec![Change::Push {
                target: Ref::Branch("main".into()),
                commit: Some(SHA.into()),
                files: None,
            }]))
        );
    }

    #[test]
    fn pull_requests_pings_and_other_events_read_as_such() {
        let h = lookup(vec![("X-GitHub-Event", "pull_request".into())]);
        let pr = |action: &str, merged: bool| {
            json!({"action": action, "pull_request": {"merged": merged,
                   "base": {"ref": "main"}, "head": {"sha": SHA, "ref": "feature"}}})
            .to_string()
        };
        let read_pr = |body: String| read(Host::GitHub, &h, body.as_bytes());
        assert_eq!(
            read_pr(pr("opened", false)),
            Ok(Said::Changes(vec![Change::PullRequest {
                event: PullRequestEvent::Open,
                target_branch: "main".into(),
                commit: SHA.into(),
                files: None
            }]))
        );
        assert!(
            matches!(read_pr(pr("closed", false)), Ok(Said::Other(_))),
            "closed unmerged"
        );
        assert!(matches!(read_pr(pr("labeled", false)), Ok(Said::Other(_))));
        let gitlab = json!({"object_attributes": {"action": "merge", "target_branch": "main",
                            "last_commit": {"id": SHA}}});
        let h = lookup(vec![("X-Gitlab-Event", "Merge Request Hook".into())]);
        assert!(matches!(
            read(Host::GitLab, &h, gitlab.to_string().as_bytes()),
            Ok(Said::Changes(c)) if matches!(c[0], Change::PullRequest { event: PullRequestEvent::Closed, .. })
        ));
        let h = lookup(vec![("X-GitHub-Event", "ping".into())]);
        assert_eq!(read(Host::GitHub, &h, b"{}"), Ok(Said::Ping));
        let h = lookup(vec![("X-GitHub-Event", "push".into())]);
        for bad in [
            &b"not json"[..],
            br#"{"ref": "refs/heads/main", "after": "xyz"}"#,
            br#"{"after": "abc"}"#,
            br#"{"ref":"HEAD","after":"0123456"}"#,
        ] {
            assert!(
                read(Host::GitHub, &h, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
