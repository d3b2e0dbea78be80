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
    /// Who the Git server is told the caller is: the HTTPS username, or the SSH login.
    pub username: String,
    pub auth: Auth,
    /// The one host (`host` or `host:port`, lowercase) these credentials may be sent to.
    pub host: Option<String>,
}

/// How a connection proves who it is.
#[derive(Clone)]
pub enum Auth {
    /// HTTPS basic authentication with a personal access token; the server's certificate comes
    /// from a system authority, or from `ca_certificate` (then the only one trusted).
    Token {
        token: String,
        ca_certificate: Option<String>,
    },
    /// SSH public-key authentication. The server must present a key `known_hosts` lists:
    /// a clone never trusts a key on first sight. `public_key` is the private key's public
    /// half, what an administrator installs on the Git server (derived when it is stored).
    SshKey {
        private_key: String,
        known_hosts: String,
        public_key: Option<String>,
    },
}

/// The `AuthType` a connection reports: `Token` or `SshKey`.
impl Auth {
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::Token { .. } => "Token",
            Auth::SshKey { .. } => "SshKey",
        }
    }

    /// What is sealed: the token or the private key.
    pub fn secret(&self) -> &str {
        match self {
            Auth::Token { token, .. } => token,
            Auth::SshKey { private_key, .. } => private_key,
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials({}, {}, ****)",
            self.username,
            self.auth.kind()
        )
    }
}

/// The largest private key stored (an RSA 16384-bit key in PEM is about 12 KiB).
const PRIVATE_KEY_LIMIT: usize = 16 * 1024;
/// The most known_hosts text a connection holds.
const KNOWN_HOSTS_LIMIT: usize = 64 * 1024;

impl Credentials {
    /// Token credentials. `field` names are the API's. A token or username that could end a
    /// line of the askpass answer (any control character) is refused; a certificate must be PEM.
    pub fn parse(
        username: &str,
        token: &str,
        ca_certificate: Option<&str>,
    ) -> Result<Self, AppError> {
        let username = parse_username(username)?;
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
            username,
            auth: Auth::Token {
                token: token.to_string(),
                ca_certificate,
            },
            host: None,
        })
    }

    /// SSH key credentials: `username` is the login (`git` on most forges), `private_key` an
    /// unencrypted OpenSSH or PEM private key, `known_hosts` the server's keys in known_hosts
    /// form (what `ssh-keyscan` prints). Whether the key really is one is learnt when it is
    /// stored ([`crate::providers::ssh::public_key`]).
    pub fn ssh_key(username: &str, private_key: &str, known_hosts: &str) -> Result<Self, AppError> {
        Ok(Credentials {
            username: parse_username(username)?,
            auth: Auth::SshKey {
                private_key: parse_private_key(private_key)?,
                known_hosts: parse_known_hosts(known_hosts)?,
                public_key: None,
            },
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

    /// What a log that might see them masks: the token, or each line of the private key.
    pub fn masked(&self) -> Vec<String> {
        match &self.auth {
            Auth::Token { token, .. } => vec![token.clone()],
            Auth::SshKey { private_key, .. } => private_key
                .lines()
                .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
                .map(str::to_string)
                .collect(),
        }
    }

    /// Whether these credentials may go to `url`, and why not: a token over HTTPS only, a key
    /// over SSH only (logging in as the connection's user), and only to the bound host.
    pub fn fit(&self, url: &str) -> Result<(), String> {
        match &self.auth {
            Auth::Token { .. } if !url.starts_with("https://") => {
                return Err(format!(
                    "a connection's token is only sent over HTTPS: the RepositoryUrl {url} must start with https://"
                ));
            }
            Auth::SshKey { .. } => {
                let Some(login) = ssh_login(url) else {
                    return Err(format!(
                        "a connection's SSH key is only used over SSH: the RepositoryUrl {url} must be ssh://... or user@host:path"
                    ));
                };
                if login.is_some_and(|user| user != self.username) {
                    return Err(format!(
                        "the RepositoryUrl logs in as another user than the connection's ({}): name it in the URL or leave the user out",
                        self.username
                    ));
                }
            }
            Auth::Token { .. } => {}
        }
        if let Some(bound) = &self.host {
            let host = host_of_url(url).unwrap_or_default();
            if &host != bound {
                return Err(format!(
                    "the connection's credentials are for {bound} only, and the RepositoryUrl is on {host}"
                ));
            }
        }
        Ok(())
    }
}

fn parse_username(username: &str) -> Result<String, AppError> {
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
    Ok(username.to_string())
}

/// A private key as ssh reads it: one PEM block, Unix line ends and a final newline (a key
/// pasted into a browser comes back with CRLF, and ssh refuses a key without the last newline).
pub fn parse_private_key(text: &str) -> Result<String, AppError> {
    let bad = |why: &str| AppError::validation("PrivateKey", why);
    let key = text.replace("\r\n", "\n");
    let key = key.trim();
    if key.is_empty() || key.len() > PRIVATE_KEY_LIMIT {
        return Err(bad("must be 1 byte to 16 KiB"));
    }
    if key.chars().any(|c| c.is_control() && c != '\n') {
        return Err(bad("must not hold control characters other than line ends"));
    }
    let first = key.lines().next().unwrap_or_default();
    let last = key.lines().last().unwrap_or_default();
    let framed = |line: &str, word: &str| {
        line.starts_with(&format!("-----{word} ")) && line.ends_with("PRIVATE KEY-----")
    };
    if !framed(first, "BEGIN") || !framed(last, "END") || key.lines().count() < 3 {
        return Err(bad(
            "must be a private key (-----BEGIN OPENSSH PRIVATE KEY----- ... -----END OPENSSH PRIVATE KEY-----)",
        ));
    }
    if key.contains("ENCRYPTED") {
        return Err(bad(crate::providers::ssh::NEEDS_PASSPHRASE));
    }
    Ok(format!("{key}\n"))
}

/// Key types a known_hosts line may name.
const HOST_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// known_hosts text: each line `[marker] hosts key-type base64-key [comment]` (comments and
/// blank lines kept as they are harmless), at least one key, Unix line ends.
pub fn parse_known_hosts(text: &str) -> Result<String, AppError> {
    use base64::Engine;
    let bad = |why: String| AppError::validation("KnownHosts", why);
    let text = text.replace("\r\n", "\n");
    let text = text.trim();
    if text.len() > KNOWN_HOSTS_LIMIT {
        return Err(bad("must be at most 64 KiB".into()));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(bad(
            "must not hold control characters other than line ends".into()
        ));
    }
    let mut keys = 0;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first().is_some_and(|f| f.starts_with('@')) {
            fields.remove(0);
        }
        let well_formed = fields.len() >= 3
            && HOST_KEY_TYPES.contains(&fields[1])
            && base64::engine::general_purpose::STANDARD
                .decode(fields[2])
                .is_ok();
        if !well_formed {
            return Err(bad(format!(
                "line {} is not a known_hosts entry (hosts, key type, key): paste what ssh-keyscan prints",
                number + 1
            )));
        }
        keys += 1;
    }
    if keys == 0 {
        return Err(bad(
            "must list the Git server's host keys (what ssh-keyscan -p PORT HOST prints)".into(),
        ));
    }
    Ok(format!("{text}\n"))
}

/// The SHA-256 fingerprint ssh shows for a public key (`SHA256:...`), from its
/// `type base64 [comment]` line.
pub fn fingerprint(public_key: &str) -> Option<String> {
    use base64::Engine;
    use sha2::Digest;
    let blob = public_key.split_whitespace().nth(1)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let digest = sha2::Sha256::digest(bytes);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    ))
}

/// Of an SSH repository URL (`ssh://[user@]host[:port]/path` or `user@host:path`), the user it
/// logs in as if it names one; `None` when the URL is not an SSH one.
fn ssh_login(url: &str) -> Option<Option<String>> {
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "ssh" => {
            Some(Some(u.username().to_string()).filter(|n| !n.is_empty()))
        }
        Ok(u) if u.host().is_some() => None,
        _ => scp_like(url).map(|(user, _)| Some(user.to_string())),
    }
}

/// The user and host of git's scp-like SSH form, `user@host:path` (no scheme, no slash before
/// the colon).
fn scp_like(url: &str) -> Option<(&str, &str)> {
    let (user_host, _) = url.split_once(':')?;
    let (user, host) = user_host.split_once('@')?;
    (!host.is_empty() && !user_host.contains('/')).then_some((user, host))
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

/// The `host` or `host:port` of a repository URL, as [`parse_host`] writes it: of an https://
/// or ssh:// URL (their default ports left out) or an scp-like `user@host:path`.
pub fn host_of_url(url: &str) -> Option<String> {
    match url::Url::parse(url) {
        Ok(u) if u.host().is_some() => {
            let host = u.host_str()?.to_ascii_lowercase();
            Some(match u.port() {
                Some(22) if u.scheme() == "ssh" => host,
                Some(p) => format!("{host}:{p}"),
                None => host,
            })
        }
        _ => scp_like(url).map(|(_, host)| host.to_ascii_lowercase()),
    }
}

/// A connection as shown: never its token or private key.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionView {
    pub name: String,
    pub arn: String,
    pub provider_type: String,
    /// `Token` or `SshKey`.
    pub auth_type: String,
    pub username: String,
    pub has_ca_certificate: bool,
    pub host: Option<String>,
    /// Of an SSH key connection: the key to install on the Git server, its fingerprint, and
    /// the host keys a clone accepts.
    pub public_key: Option<String>,
    pub fingerprint: Option<String>,
    pub known_hosts: Option<String>,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

fn view(row: &ConnectionRow) -> ConnectionView {
    ConnectionView {
        name: row.name.clone(),
        arn: Resource::connection(&row.name).to_string(),
        provider_type: row.provider_type.clone(),
        auth_type: row.auth_type.clone(),
        username: row.username.clone(),
        has_ca_certificate: row.ca_certificate.is_some(),
        host: row.host.clone(),
        fingerprint: row.public_key.as_deref().and_then(fingerprint),
        public_key: row.public_key.clone(),
        known_hosts: row.known_hosts.clone(),
        created_by: row.created_by.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// The public half of an SSH key connection's private key (the key refused when ssh cannot
/// read it); other credentials as they are.
async fn with_public_key(mut credentials: Credentials) -> Result<Credentials, AppError> {
    if let Auth::SshKey {
        private_key,
        public_key,
        ..
    } = &mut credentials.auth
    {
        *public_key = Some(
            crate::providers::ssh::public_key(private_key)
                .await
                .map_err(|why| AppError::validation("PrivateKey", why))?,
        );
    }
    Ok(credentials)
}

/// The stored parts of `auth`: (ca_certificate, public_key, known_hosts).
fn stored_parts(auth: &Auth) -> (Option<String>, Option<String>, Option<String>) {
    match auth {
        Auth::Token { ca_certificate, .. } => (ca_certificate.clone(), None, None),
        Auth::SshKey {
            known_hosts,
            public_key,
            ..
        } => (None, public_key.clone(), Some(known_hosts.clone())),
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
        "AuthType": credentials.auth.kind(),
        "Username": credentials.username,
        "CaCertificate": matches!(&credentials.auth, Auth::Token { ca_certificate: Some(_), .. }),
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
            let credentials = with_public_key(credentials).await?;
            let id = Uuid::new_v4();
            let now = op.now();
            let (ca_certificate, public_key, known_hosts) = stored_parts(&credentials.auth);
            let row = ConnectionRow {
                id,
                name: name.as_str().to_string(),
                provider_type: provider_type.to_string(),
                auth_type: credentials.auth.kind().to_string(),
                username: credentials.username.clone(),
                sealed_token: s
                    .root_key
                    .seal(credentials.auth.secret(), &token_context(id)),
                ca_certificate,
                public_key,
                known_hosts,
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

/// What [`update_connection`] changes; what is `None` stays.
#[derive(Default)]
pub struct Replacement<'a> {
    pub username: Option<&'a str>,
    /// A token connection's new token (required for one).
    pub token: Option<&'a str>,
    /// A token connection's certificate: an empty one removes it.
    pub ca_certificate: Option<&'a str>,
    /// An SSH key connection's new key, its new host keys, or both.
    pub private_key: Option<&'a str>,
    pub known_hosts: Option<&'a str>,
}

/// The credentials `row` holds after `change`, checked; the secret opened with `open` when
/// the change keeps it.
fn replaced(
    row: &ConnectionRow,
    change: &Replacement<'_>,
    open: impl FnOnce() -> Option<String>,
) -> Result<Credentials, AppError> {
    let username = change.username.unwrap_or(&row.username);
    if row.auth_type == "SshKey" {
        if change.token.is_some() || change.ca_certificate.is_some() {
            return Err(AppError::validation(
                "Token",
                "this connection authenticates with an SSH key: give PrivateKey or KnownHosts",
            ));
        }
        if change.private_key.is_none() && change.known_hosts.is_none() {
            return Err(AppError::validation(
                "PrivateKey",
                "give a new PrivateKey, new KnownHosts, or both",
            ));
        }
        let private_key = match change.private_key {
            Some(key) => key.to_string(),
            None => open().ok_or_else(|| {
                AppError::validation(
                    "PrivateKey",
                    "the stored key does not open with this server's master key: give it again",
                )
            })?,
        };
        let known_hosts = change
            .known_hosts
            .or(row.known_hosts.as_deref())
            .unwrap_or_default();
        return Credentials::ssh_key(username, &private_key, known_hosts);
    }
    if change.private_key.is_some() || change.known_hosts.is_some() {
        return Err(AppError::validation(
            "PrivateKey",
            "this connection authenticates with a token: give Token",
        ));
    }
    let Some(token) = change.token else {
        return Err(AppError::validation("Token", "must be given"));
    };
    Credentials::parse(
        username,
        token,
        change.ca_certificate.or(row.ca_certificate.as_deref()),
    )
}

/// Replaces a connection's secret (a token, or an SSH key and its host keys) and, when given,
/// its username or certificate. Pipelines that name it clone with the new one from their next
/// run.
pub async fn update_connection(
    s: &Services,
    c: &Caller,
    name: &ConnectionName,
    change: Replacement<'_>,
) -> Result<ConnectionView, AppError> {
    Op::run_on(
        s,
        c,
        Kind::Change,
        Action::UpdateConnection,
        name.as_str(),
        json!({
            "ConnectionName": name.as_str(),
            "Username": change.username,
            "Token": change.token.is_some(),
            "CaCertificate": change.ca_certificate.map(|c| !c.trim().is_empty()),
            "PrivateKey": change.private_key.is_some(),
            "KnownHosts": change.known_hosts.is_some(),
        }),
        async |op, mut row: ConnectionRow| {
            let credentials = replaced(&row, &change, || {
                s.root_key.open(&row.sealed_token, &token_context(row.id))
            })?;
            let credentials = if change.private_key.is_some() {
                with_public_key(credentials).await?
            } else {
                credentials
            };
            let (ca_certificate, public_key, known_hosts) = stored_parts(&credentials.auth);
            let now = op.now();
            row.username = credentials.username.clone();
            row.sealed_token = s
                .root_key
                .seal(credentials.auth.secret(), &token_context(row.id));
            row.ca_certificate = ca_certificate;
            row.public_key = public_key.or(row.public_key);
            row.known_hosts = known_hosts;
            row.updated_at = now;
            if !db::connections::update(op.conn(), &row).await? {
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
    let Some(secret) = s.root_key.open(&row.sealed_token, &token_context(row.id)) else {
        return Ok(Err(format!(
            "the secret of connection {} does not open with this server's master key; set it again with UpdateConnection",
            row.name
        )));
    };
    let auth = if row.auth_type == "SshKey" {
        Auth::SshKey {
            private_key: secret,
            known_hosts: row.known_hosts.unwrap_or_default(),
            public_key: row.public_key,
        }
    } else {
        Auth::Token {
            token: secret,
            ca_certificate: row.ca_certificate,
        }
    };
    Ok(Ok(Credentials {
        username: row.username,
        auth,
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
        let ca_of = |c: Credentials| match c.auth {
            Auth::Token { ca_certificate, .. } => ca_certificate,
            Auth::SshKey { .. } => unreachable!("a token was given"),
        };
        assert!(ca_of(with_ca).unwrap().ends_with("-----\n"));
        assert_eq!(
            ca_of(Credentials::parse("bot", "t", Some("  ")).unwrap()),
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

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----";
    const HOST_KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIIq/JAxa1AeuJLSGRtxL2RmINdzr0xzrQHVbOuMv5lEh";

    #[test]
    fn a_private_key_comes_back_as_ssh_reads_it_and_what_is_not_one_is_refused() {
        // Pasted from a browser: CRLF, surrounding blanks, no final newline.
        let pasted = format!("  {}  \r\n", KEY.replace('\n', "\r\n"));
        assert_eq!(parse_private_key(&pasted).unwrap(), format!("{KEY}\n"));
        let rsa = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----";
        assert!(parse_private_key(rsa).is_ok());
        let refused = |text: &str| parse_private_key(text).unwrap_err().to_string();
        for junk in [
            "",
            "ssh-ed25519 AAAA the public key",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----\n-----END OPENSSH PRIVATE KEY-----",
            &format!("{KEY}\u{7}"),
            &format!("{KEY}\n{}", "A".repeat(PRIVATE_KEY_LIMIT)),
        ] {
            let message = refused(junk);
            assert!(message.starts_with("PrivateKey"), "{junk:?}: {message}");
            assert!(
                !message.contains("b3BlbnNzaC1rZXkt"),
                "never quoted: {message}"
            );
        }
        let locked = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nMIIE\n-----END RSA PRIVATE KEY-----";
        assert!(refused(locked).contains("passphrase"));
    }

    #[test]
    fn known_hosts_are_entries_of_a_known_key_type_and_at_least_one() {
        let line = format!("[127.0.0.1]:2222 ssh-ed25519 {HOST_KEY}");
        let text = format!(
            "# scanned\r\n{line}\r\n\r\n@cert-authority *.example.com ssh-rsa {HOST_KEY} ca\r\n"
        );
        let parsed = parse_known_hosts(&text).unwrap();
        assert!(
            parsed.ends_with("ca\n") && !parsed.contains('\r'),
            "{parsed:?}"
        );
        let refused = |text: &str| parse_known_hosts(text).unwrap_err().to_string();
        assert!(refused("").contains("host keys"));
        assert!(refused("# only a comment").contains("host keys"));
        // The key alone, without the hosts it belongs to.
        assert!(refused(&format!("ssh-ed25519 {HOST_KEY}")).contains("line 1"));
        assert!(refused(&format!("{line}\nhost ssh-dss {HOST_KEY}")).contains("line 2"));
        assert!(refused("host ssh-ed25519 not*base64").contains("line 1"));
        assert!(refused(&format!("{line}\u{0}")).starts_with("KnownHosts"));
    }

    #[test]
    fn the_host_of_a_repository_url_is_written_as_a_bound_host_is() {
        for (url, host) in [
            ("https://Git.Example.com/a.git", Some("git.example.com")),
            (
                "https://git.example.com:8443/a.git",
                Some("git.example.com:8443"),
            ),
            ("https://git.example.com:443/a.git", Some("git.example.com")),
            ("ssh://git@git.example.com/a.git", Some("git.example.com")),
            (
                "ssh://git@git.example.com:22/a.git",
                Some("git.example.com"),
            ),
            (
                "ssh://git@git.example.com:2222/a.git",
                Some("git.example.com:2222"),
            ),
            ("git@GitHub.com:team/app.git", Some("github.com")),
            ("/srv/git/app.git", None),
        ] {
            assert_eq!(host_of_url(url).as_deref(), host, "{url}");
        }
        for bound in ["git.example.com", "github.com", "git.example.com:2222"] {
            assert_eq!(parse_host(bound).unwrap(), bound);
        }
    }

    #[test]
    fn credentials_go_only_where_they_fit() {
        let token = Credentials::parse("bot", "t", None).unwrap();
        let key = Credentials::ssh_key("git", KEY, &format!("h ssh-ed25519 {HOST_KEY}")).unwrap();
        assert!(token.fit("https://git.example.com/a.git").is_ok());
        for over_ssh in [
            "ssh://git@git.example.com/a.git",
            "git@git.example.com:a.git",
            "/srv/a.git",
        ] {
            assert!(
                token.fit(over_ssh).unwrap_err().contains("HTTPS"),
                "{over_ssh}"
            );
        }
        for fits in [
            "ssh://git@git.example.com:2222/a.git",
            "ssh://git.example.com/a.git",
            "git@git.example.com:team/a.git",
        ] {
            assert_eq!(key.fit(fits), Ok(()), "{fits}");
        }
        for not_ssh in ["https://git.example.com/a.git", "/srv/a.git"] {
            assert!(
                key.fit(not_ssh).unwrap_err().contains("over SSH"),
                "{not_ssh}"
            );
        }
        assert!(
            key.fit("ssh://root@git.example.com/a.git")
                .unwrap_err()
                .contains("another user")
        );
        let bound = key.clone().bound_to(Some("Git.Example.com:2222")).unwrap();
        assert_eq!(bound.fit("ssh://git@git.example.com:2222/a.git"), Ok(()));
        assert!(
            bound
                .fit("git@git.example.com:a.git")
                .unwrap_err()
                .contains("for git.example.com:2222 only")
        );
        assert!(!format!("{key:?}").contains("b3BlbnNzaC1rZXkt"));
        assert_eq!(
            key.masked(),
            ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"]
        );
    }
}
