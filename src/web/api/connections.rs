//! The connection operations of the API, in CodeConnections' shapes (PascalCase fields), plus
//! what Sluice's connections carry that AWS's OAuth connections do not: `Username` with either
//! `Token` (and `CaCertificate`) or `PrivateKey` and `KnownHosts` on create, `Host`, and
//! `UpdateConnection` to replace them. Connections take no
//! tags yet: `Tags` is refused as an unknown field rather than dropped.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, epoch, parse};
use crate::error::AppError;
use crate::ops::connections::{self, ConnectionName, ConnectionView, Credentials, Replacement};
use crate::ops::{Caller, Page, Services};

pub const OPERATIONS: &[&str] = &[
    "CreateConnection",
    "GetConnection",
    "ListConnections",
    "UpdateConnection",
    "DeleteConnection",
];

pub async fn call(
    s: &Services,
    c: &Caller,
    operation: &str,
    input: Value,
) -> Result<Value, ApiError> {
    Ok(match operation {
        "CreateConnection" => {
            let i: Create = parse(input)?;
            let name = ConnectionName::parse(&i.connection_name)
                .map_err(|m| AppError::validation("ConnectionName", m))?;
            let credentials = match (&i.token, &i.private_key) {
                (Some(token), None) => {
                    if i.known_hosts.is_some() {
                        return Err(AppError::validation(
                            "KnownHosts",
                            "goes with a PrivateKey, not a Token",
                        )
                        .into());
                    }
                    Credentials::parse(&i.username, token, i.ca_certificate.as_deref())?
                }
                (None, Some(key)) => {
                    if i.ca_certificate.is_some() {
                        return Err(AppError::validation(
                            "CaCertificate",
                            "goes with a Token (HTTPS); an SSH key connection trusts KnownHosts",
                        )
                        .into());
                    }
                    Credentials::ssh_key(&i.username, key, i.known_hosts.as_deref().unwrap_or(""))?
                }
                _ => {
                    return Err(AppError::validation(
                        "Token",
                        "give a Token (HTTPS) or a PrivateKey (SSH), one of them",
                    )
                    .into());
                }
            }
            .bound_to(i.host.as_deref())?;
            let provider = i.provider_type.as_deref().unwrap_or("Git");
            let created = connections::create_connection(s, c, name, provider, credentials).await?;
            json!({"ConnectionArn": created.arn})
        }
        "GetConnection" => {
            let i: ByArn = parse(input)?;
            let name = by_arn(&i.connection_arn)?;
            json!({"Connection": shape(&connections::get_connection(s, c, &name).await?)})
        }
        "ListConnections" => {
            let i: List = parse(input)?;
            let page = Page {
                next: i.next_token,
                max: i.max_results,
            };
            let listed =
                connections::list_connections(s, c, i.provider_type_filter.as_deref(), &page)
                    .await?;
            let mut out =
                json!({"Connections": listed.items.iter().map(shape).collect::<Vec<_>>()});
            if let Some(next) = listed.next {
                out["NextToken"] = json!(next);
            }
            out
        }
        "UpdateConnection" => {
            let i: Update = parse(input)?;
            let name = by_arn(&i.connection_arn)?;
            let change = Replacement {
                username: i.username.as_deref(),
                token: i.token.as_deref(),
                ca_certificate: i.ca_certificate.as_deref(),
                private_key: i.private_key.as_deref(),
                known_hosts: i.known_hosts.as_deref(),
            };
            let updated = connections::update_connection(s, c, &name, change).await?;
            json!({"Connection": shape(&updated)})
        }
        "DeleteConnection" => {
            let i: ByArn = parse(input)?;
            let name = by_arn(&i.connection_arn)?;
            connections::delete_connection(s, c, &name).await?;
            json!({})
        }
        _ => unreachable!("dispatch checks the operation"),
    })
}

fn by_arn(arn: &str) -> Result<ConnectionName, AppError> {
    ConnectionName::from_arn(arn).map_err(|m| AppError::validation("ConnectionArn", m))
}

fn shape(v: &ConnectionView) -> Value {
    json!({
        "ConnectionName": v.name,
        "ConnectionArn": v.arn,
        "ProviderType": v.provider_type,
        "OwnerAccountId": "000000000000",
        "ConnectionStatus": "AVAILABLE",
        "AuthType": v.auth_type,
        "Username": v.username,
        "HasCaCertificate": v.has_ca_certificate,
        "Host": v.host,
        "PublicKey": v.public_key,
        "PublicKeyFingerprint": v.fingerprint,
        "KnownHosts": v.known_hosts,
        "CreatedBy": v.created_by,
        "Created": epoch(v.created_at),
        "Updated": epoch(v.updated_at),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Create {
    connection_name: String,
    provider_type: Option<String>,
    username: String,
    token: Option<String>,
    ca_certificate: Option<String>,
    private_key: Option<String>,
    known_hosts: Option<String>,
    /// Sluice's: the one host the credentials may be sent to.
    host: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ByArn {
    connection_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct List {
    provider_type_filter: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Update {
    connection_arn: String,
    username: Option<String>,
    token: Option<String>,
    ca_certificate: Option<String>,
    private_key: Option<String>,
    known_hosts: Option<String>,
}
