//! Console sessions of a user: list and end.

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::target_user;
use crate::access::Action;
use crate::db::{self, users::UserRow};
use crate::error::AppError;
use crate::ops::{Caller, Kind, Op, Services};

#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub current: bool,
}

pub async fn list_sessions(
    s: &Services,
    caller: &Caller,
    user: Option<&str>,
) -> Result<Vec<SessionInfo>, AppError> {
    let name = target_user(caller, user).to_string();
    Op::run_on(
        s,
        caller,
        Kind::Read,
        Action::ListSessions,
        &name,
        json!({"userName": name}),
        async |op, u: UserRow| {
            let now = op.now();
            let idle_cutoff = now - s.sessions.idle;
            let current = op.caller().session_id();
            let rows = db::sessions::list_for_user(op.conn(), u.id, now).await?;
            Ok(rows
                .into_iter()
                .filter(|r| r.last_seen_at > idle_cutoff)
                .map(|r| SessionInfo {
                    current: Some(r.id) == current,
                    id: r.id,
                    created_at: r.created_at,
                    last_seen_at: r.last_seen_at,
                    expires_at: r.expires_at,
                    source_ip: r.source_ip,
                    user_agent: r.user_agent,
                })
                .collect())
        },
    )
    .await
}

/// Ends one session (`Some(id)`) or all (`None`) of a user.
pub async fn delete_sessions(
    s: &Services,
    caller: &Caller,
    user: Option<&str>,
    session: Option<Uuid>,
) -> Result<u64, AppError> {
    let name = target_user(caller, user).to_string();
    Op::run_on(
        s,
        caller,
        Kind::Change,
        Action::DeleteSession,
        &name,
        json!({"userName": name, "sessionId": session.map(|s| s.to_string())}),
        async |op, u: UserRow| match session {
            Some(id) => {
                if db::sessions::delete_for_user(op.conn(), u.id, id).await? {
                    Ok(1)
                } else {
                    Err(AppError::NoSuchEntity(
                        "That session does not exist or has ended.".into(),
                    ))
                }
            }
            None => Ok(db::sessions::delete_all_for_user(op.conn(), u.id, None).await?),
        },
    )
    .await
}
