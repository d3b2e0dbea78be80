//! Connections (CodeConnections' role): named HTTPS credentials for Git sources, a username and a
//! token sealed by the master key (bound to the connection), and optionally the certificate of
//! the private authority a self-hosted Git server's TLS certificate comes from. The token is
//! never returned, logged or audited; only a worker that clones with it opens it.
//!
//! A pipeline names a connection in a Git action's `ConnectionName`. Saving a pipeline that
//! starts sending a connection's credentials somewhere (a new reference, or a new RepositoryUrl
//! for an existing one) needs `codeconnections:PassConnection` on it, as AWS asks of whoever
//! hands a connection to a pipeline: otherwise anyone allowed to edit a pipeline could point a
//! stored token at their own server.

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Caller, Kind, Named, Op, Page, Paged, Services};
use crate::access::{self, Action, Resource};
use crate::db;
use crate::db::connections::ConnectionRow;
use crate::error::AppError;
use crate::pipeline::wire::PipelineDeclaration;

/// The provider types CodeConnections knows, Gitea and Forgejo, and `Git` for any other server.
pub const PROVIDER_TYPES: &[&str] = &[
    "Git",
    "GitHub",
    "GitHubEnterpriseServer",
    "GitLab",
    "GitLabSelfManaged",
    "Bitbucket",
    "AzureDevOps",
    // Sluice's: the self-hosted forges CodeConnections does not know.
    "Gitea",
    "Forgejo",
];

/// A connection's name: 1-32 of letters, digits, `.`, `@`, `_` and `-` (CodeConnections' rule).
/// Names are unique whatever their case; the stored spelling is the canonical one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionName(String);

impl ConnectionName {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > 32 {
            return Err("must be 1 to 32 characters".into());
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".@_-".contains(&b))
        {
            return Err("may hold only letters, digits, '.', '@', '_' and '-'".into());
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name in a connection's ARN (`arn:sluice:codeconnections:::connection/NAME`, or an
    /// ARN of AWS's form naming the same resource).
    pub fn from_arn(arn: &str) -> Result<Self, String> {
        let resource = Resource::parse(arn).map_err(|_| "is not a connection ARN".to_string())?;
        match resource {
            Resource::Arn(arn) if arn.service() == access::Service::CodeConnections => arn
                .resource()
                .strip_prefix("connection/")
                .ok_or_else(|| "is not a connection ARN".to_string())
                .and_then(ConnectionName::parse),
            _ => Err("is not a connection ARN".into()),
        }
    }
}

/// What a connection is made of, each part checked.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    token: String,
    pub ca_certificate: Option<String>,
    /// The one host (`host` or `host:port`, lowercase) these credentials may be sent to.
    pub host: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ****)", self.username)
    }
}

impl Credentials {
    /// `field` names are the API's. A token or username that could end a line of the askpass
    /// answer (any control character) is refused; a certificate must be PEM.
    pub fn parse(
        username: &str,
        token: &str,
        ca_certificate: Option<&str>,
    ) -> Result<Self, AppError> {
        if username.is_empty() || username.chars().count() > 256 {
            return Err(AppError::validation(
                "Username",
                "must be 1 to 256 characters",
            ));
        }
        if username.chars().any(char::is_control) {
            return Err(AppError::validation(
                "Username",
                "must not hold control characters",
            ));
        }
        if token.is_empty() || token.len() > 4096 {
            return Err(AppError::validation("Token", "must be 1 to 4096 bytes"));
        }
        // Never quoted: the message says what is wrong, not where.
        if token.chars().any(char::is_control) {
            return Err(AppError::validation(
                "Token",
                "must not hold control characters (newlines, tabs)",
            ));
        }
        let ca_certificate = match ca_certificate.map(str::trim) {
            None | Some("") => None,
            Some(pem) => {
                if pem.len() > 65536 || !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(AppError::validation(
                        "CaCertificate",
                        "must be PEM certificates (-----BEGIN CERTIFICATE-----), at most 64 KiB",
                    ));
                }
                Some(format!("{pem}\n"))
            }
        };
        Ok(Credentials {
            username: username.to_string(),
            token: token.to_string(),
            ca_certificate,
            host: None,
        })
    }

    /// The same credentials, bound to `host` (checked by [`parse_host`]).
    pub fn bound_to(mut self, host: Option<&str>) -> Result<Self, AppError> {
        self.host = match host.map(str::trim).filter(|h| !h.is_empty()) {
            Some(h) => Some(parse_host(h)?),
            None => None,
        };
        Ok(self)
    }

    pub fn token(&self) -> &str {
        &self.token
    }
}

/// A connection's host, canonical: lowercase `name` or `name:port` (letters, digits, `.`, `-`;
/// a port of 1-65535), at most 255 characters.
pub fn parse_host(text: &str) -> Result<String, AppError> {
    let bad = || {
        AppError::validation(
            "Host",
            "must be a host name or host:port (letters, digits, '.' and '-')",
        )
    };
    let host = text.trim().to_ascii_lowercase();
    if host.is_empty() || host.len() > 255 {
        return Err(bad());
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host.as_str(), None),
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !name.starts_with(['.', '-']);
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if name_ok && port_ok {
        Ok(host)
    } else {
        Err(bad())
    }
}

/// The `host` or `host:port` of a repository URL, as [`parse_host`] writes it.
pub fn host_of_url(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?.to_ascii_lowercase();
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// A connection as shown: never its token.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionView {
    pub name: String,
    pub arn: String,
    pub provider_type: String,
    pub username: String,
    pub has_ca_certificate: bool,
    pub host: Option<String>,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

fn view(row: &ConnectionRow) -> ConnectionView {
    ConnectionView {
        name: row.name.clone(),
        arn: Resource::connection(&row.name).to_string(),
        provider_type: row.provider_type.clone(),
        username: row.username.clone(),
        has_ca_certificate: row.ca_certificate.is_some(),
        host: row.host.clone(),
        created_by: row.created_by.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

pub(crate) fn token_context(id: Uuid) -> String {
    format!("connection:{id}:token")
}

impl Named for ConnectionRow {
    async fn find(conn: &mut sqlx::PgConnection, name: &str) -> Result<Option<Self>, sqlx::Error> {
        if ConnectionName::parse(name).is_err() {
            return Ok(None);
        }
        db::connections::find(conn, name).await
    }

    fn resource(&self) -> Resource {
        Resource::connection(&self.name)
    }

    fn resource_named(name: &str) -> Resource {
        Resource::connection(name)
    }

    fn not_found(name: &str) -> AppError {
        AppError::NotFound {
            code: "ResourceNotFoundException",
            message: format!("The connection {name} does not exist"),
        }
    }
}

pub async fn create_connection(
    s: &Services,
    c: &Caller,
    name: ConnectionName,
    provider_type: &str,
    credentials: Credentials,
) -> Result<ConnectionView, AppError> {
    let params = json!({
        "ConnectionName": name.as_str(),
        "ProviderType": provider_type,
        "Username": credentials.username,
        "CaCertificate": credentials.ca_certificate.is_some(),
        "Host": credentials.host,
    });
    Op::run(
        s,
        c,
        Kind::Change,
        Action::CreateConnection,
        Resource::connection(name.as_str()),
        params,
        async |op| {
            if !PROVIDER_TYPES.contains(&provider_type) {
                return Err(AppError::validation(
                    "ProviderType",
                    format!("must be one of {}", PROVIDER_TYPES.join(", ")),
                ));
            }
            let id = Uuid::new_v4();
            let now = op.now();
            let row = ConnectionRow {
                id,
                name: name.as_str().to_string(),
                provider_type: provider_type.to_string(),
                username: credentials.username.clone(),
                sealed_token: s.root_key.seal(credentials.token(), &token_context(id)),
                ca_certificate: credentials.ca_certificate.clone(),
                host: credentials.host.clone(),
                created_by: op.caller().user_name().to_string(),
                created_at: now,
                updated_at: now,
            };
            if !db::connections::insert(op.conn(), &row).await? {
                return Err(AppError::Rejected {
                    code: "ResourceAlreadyExistsException",
                    message: format!("A connection named {} already exists", name.as_str()),
                });
            }
            Ok(view(&row))
        },
    )
    .await
}

pub async fn get_connection(
    s: &Services,
    c: &Caller,
    name: &ConnectionName,
) -> Result<ConnectionView, AppError> {
    Op::run_on(
        s,
        c,
        Kind::Read,
        Action::GetConnection,
        name.as_str(),
        json!({"ConnectionName": name.as_str()}),
        async |_, row: ConnectionRow| Ok(view(&row)),
    )
    .await
}

/// Replaces a connection's token (and its username or certificate when given: an empty
/// certificate removes it). Pipelines that name it clone with the new one from their next run.
pub async fn update_connection(
    s: &Services,
    c: &Caller,
    name: &ConnectionName,
    username: Option<&str>,
    token: &str,
    ca_certificate: Option<&str>,
) -> Result<ConnectionView, AppError> {
    Op::run_on(
        s,
        c,
        Kind::Change,
        Action::UpdateConnection,
        name.as_str(),
        json!({
            "ConnectionName": name.as_str(),
            "Username": username,
            "CaCertificate": ca_certificate.map(|c| !c.trim().is_empty()),
        }),
        async |op, mut row: ConnectionRow| {
            let kept_certificate = row.ca_certificate.clone();
            let credentials = Credentials::parse(
                username.unwrap_or(&row.username),
                token,
                ca_certificate.or(kept_certificate.as_deref()),
            )?;
            let now = op.now();
            row.username = credentials.username.clone();
            row.sealed_token = s.root_key.seal(credentials.token(), &token_context(row.id));
            row.ca_certificate = credentials.ca_certificate.clone();
            row.updated_at = now;
            if !db::connections::update(
                op.conn(),
                row.id,
                &row.username,
                &row.sealed_token,
                row.ca_certificate.as_deref(),
                now,
            )
            .await?
            {
                return Err(ConnectionRow::not_found(name.as_str()));
            }
            Ok(view(&row))
        },
    )
    .await
}

/// Deletes a connection. Pipelines that name it fail their Git action until it exists again.
pub async fn delete_connection(
    s: &Services,
    c: &Caller,
    name: &ConnectionName,
) -> Result<(), AppError> {
    Op::run_on(
        s,
        c,
        Kind::Change,
        Action::DeleteConnection,
        name.as_str(),
        json!({"ConnectionName": name.as_str()}),
        async |op, row: ConnectionRow| {
            // A connection a pipeline names stays: its next run would fail to clone.
            let mut users = Vec::new();
            for (_, pipeline, _, text) in db::pipelines::current_declarations(op.conn()).await? {
                let Ok(decl) = serde_json::from_str::<PipelineDeclaration>(&text) else {
                    continue;
                };
                if references(&decl)
                    .iter()
                    .any(|(_, _, c, _)| c.eq_ignore_ascii_case(&row.name))
                {
                    users.push(pipeline);
                }
            }
            if !users.is_empty() {
                let shown: Vec<&str> = users.iter().take(10).map(String::as_str).collect();
                return Err(AppError::Rejected {
                    code: "ResourceInUseException",
                    message: format!(
                        "The connection {} is used by {} pipeline{} ({}{}); change {} first",
                        row.name,
                        users.len(),
                        if users.len() == 1 { "" } else { "s" },
                        shown.join(", "),
                        if users.len() > shown.len() {
                            ", …"
                        } else {
                            ""
                        },
                        if users.len() == 1 { "it" } else { "them" }
                    ),
                });
            }
            db::connections::delete(op.conn(), row.id).await?;
            Ok(())
        },
    )
    .await
}

pub async fn list_connections(
    s: &Services,
    c: &Caller,
    provider_type: Option<&str>,
    page: &Page,
) -> Result<Paged<ConnectionView>, AppError> {
    Op::run(
        s,
        c,
        Kind::Read,
        Action::ListConnections,
        Resource::All,
        json!({"ProviderTypeFilter": provider_type}),
        async |op| {
            let limit = page.limit()?;
            let rows = db::connections::list(op.conn(), page.next.as_deref(), limit + 1).await?;
            let shown: Vec<ConnectionView> = rows
                .iter()
                .filter(|r| provider_type.is_none_or(|p| r.provider_type == p))
                .map(view)
                .collect();
            Ok(Paged::from_rows(shown, limit, |v| v.name.clone()))
        },
    )
    .await
}

/// The Git actions of `decl` that name a connection: (stage, action, connection, repository).
fn references(decl: &PipelineDeclaration) -> Vec<(&str, &str, &str, &str)> {
    let mut found = Vec::new();
    for stage in &decl.stages {
        for action in &stage.actions {
            let id = &action.action_type_id;
            if (
                id.category.as_str(),
                id.owner.as_str(),
                id.provider.as_str(),
            ) != ("Source", "Sluice", "Git")
            {
                continue;
            }
            let Some(config) = &action.configuration else {
                continue;
            };
            if let Some(connection) = config.get("ConnectionName") {
                found.push((
                    stage.name.as_str(),
                    action.name.as_str(),
                    connection.as_str(),
                    config.get("RepositoryUrl").map_or("", String::as_str),
                ));
            }
        }
    }
    found
}

/// Inside a pipeline's create or update: every connection `decl` names must exist, and the
/// caller must be allowed `codeconnections:PassConnection` on each one this save starts
/// sending somewhere (not named by the same action with the same RepositoryUrl in `previous`).
pub async fn check_passed(
    op: &mut Op<'_>,
    previous: Option<&PipelineDeclaration>,
    decl: &PipelineDeclaration,
) -> Result<(), AppError> {
    let before = previous.map(references).unwrap_or_default();
    for (stage, action, connection, url) in references(decl) {
        let path =
            format!("pipeline.stages[{stage}].actions[{action}].configuration.ConnectionName");
        let missing = || AppError::Rejected {
            code: "InvalidActionDeclarationException",
            message: format!("{path}: no connection is named {connection}"),
        };
        let Some(row) = <ConnectionRow as Named>::find(op.conn(), connection).await? else {
            return Err(missing());
        };
        let unchanged = before.iter().any(|(s, a, c, u)| {
            *s == stage && *a == action && c.eq_ignore_ascii_case(connection) && *u == url
        });
        if unchanged {
            continue;
        }
        let resource = Resource::connection(&row.name);
        access::authorize(&op.caller().principal, Action::PassConnection, &resource)
            .into_result()
            .map_err(AppError::AccessDenied)?;
    }
    Ok(())
}

/// What a Git action clones with: the connection's credentials, opened. The engine's own read,
/// for a worker about to run the action.
pub async fn credentials_for(
    s: &Services,
    conn: &mut sqlx::PgConnection,
    name: &str,
) -> Result<Result<Credentials, String>, AppError> {
    let Some(row) = <ConnectionRow as Named>::find(conn, name).await? else {
        return Ok(Err(format!(
            "the connection {name} does not exist (it may have been deleted)"
        )));
    };
    let Some(token) = s.root_key.open(&row.sealed_token, &token_context(row.id)) else {
        return Ok(Err(format!(
            "the token of connection {} does not open with this server's master key; set it again with UpdateConnection",
            row.name
        )));
    };
    Ok(Ok(Credentials {
        username: row.username,
        token,
        ca_certificate: row.ca_certificate,
        host: row.host,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arns_parse_to_the_same_connection() {
        assert!(ConnectionName::parse("deploy-bot@ci.1_x").is_ok());
        for bad in ["", "a b", "ä", "x/y", &"a".repeat(33), "a\u{0}"] {
            assert!(ConnectionName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ConnectionName::from_arn("arn:sluice:codeconnections:::connection/GitLab")
                .unwrap()
                .as_str(),
            "GitLab"
        );
        assert_eq!(
            ConnectionName::from_arn("arn:aws:codeconnections:us-east-1:111122223333:connection/x")
                .unwrap()
                .as_str(),
            "x"
        );
        for bad in [
            "connection/x",
            "arn:sluice:codepipeline:::connection/x",
            "arn:sluice:codeconnections:::host/x",
            "arn:sluice:codeconnections:::connection/a b",
        ] {
            assert!(ConnectionName::from_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_refuse_what_would_break_the_askpass_answer() {
        assert!(Credentials::parse("bot", "glpat-xyz", None).is_ok());
        let err = |u: &str, t: &str, c: Option<&str>| {
            Credentials::parse(u, t, c).unwrap_err().to_string()
        };
        assert!(err("", "t", None).starts_with("Username"));
        assert!(err("a\nb", "t", None).starts_with("Username"));
        let newline = err("bot", "secret-part\nrest", None);
        assert!(newline.starts_with("Token") && !newline.contains("secret-part"));
        assert!(err("bot", "", None).starts_with("Token"));
        assert!(err("bot", "t", Some("not a certificate")).starts_with("CaCertificate"));
        let with_ca = Credentials::parse(
            "bot",
            "t",
            Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"),
        )
        .unwrap();
        assert!(with_ca.ca_certificate.unwrap().ends_with("-----\n"));
        assert_eq!(
            Credentials::parse("bot", "t", Some("  "))
                .unwrap()
                .ca_certificate,
            None
        );
        assert!(
            !format!("{:?}", Credentials::parse("bot", "hunter2", None).unwrap())
                .contains("hunter2")
        );
    }

    #[test]
    fn references_are_the_git_actions_naming_a_connection() {
        let decl: PipelineDeclaration = serde_json::from_value(json!({
            "name": "p",
            "stages": [
                {"name": "Source", "actions": [
                    {"name": "A", "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
                     "configuration": {"RepositoryUrl": "https://git.example.com/a.git", "Branch": "main", "ConnectionName": "bot"},
                     "outputArtifacts": [{"name": "S"}]},
                    {"name": "B", "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
                     "configuration": {"RepositoryUrl": "https://git.example.com/b.git", "Branch": "main"},
                     "outputArtifacts": [{"name": "T"}]}
                ]},
                {"name": "Build", "actions": [
                    {"name": "C", "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
                     "configuration": {"ConnectionName": "not-a-git-action"},
                     "inputArtifacts": [{"name": "S"}]}
                ]}
            ]
        }))
        .unwrap();
        assert_eq!(
            references(&decl),
            [("Source", "A", "bot", "https://git.example.com/a.git")]
        );
    }
}
