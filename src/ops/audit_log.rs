//! Reading the audit log: filtered lookup with keyset paging.

use serde_json::json;

use super::{Caller, Kind, Op, Page, Paged, Services};
use crate::access::{Action, Resource};
use crate::db::{self, audit::AuditFilter, audit::AuditRow};
use crate::error::AppError;

/// Longest page of an export read at once (the export streams page after page).
pub const EXPORT_PAGE: i64 = 1000;

pub async fn lookup_audit_events(
    s: &Services,
    caller: &Caller,
    filter: &AuditFilter,
    page: &Page,
) -> Result<Paged<AuditRow>, AppError> {
    Op::run(
        s,
        caller,
        Kind::Read,
        Action::LookupAuditEvents,
        Resource::All,
        json!({}),
        async |op| {
            let limit = page.limit()?;
            let before = match &page.next {
                None => None,
                Some(t) => Some(t.parse::<i64>().map_err(|_| {
                    AppError::validation("nextToken", "is not a token from an earlier page")
                })?),
            };
            let rows = db::audit::lookup(op.conn(), filter, before, limit + 1).await?;
            Ok(Paged::from_rows(rows, limit, |r| r.seq.to_string()))
        },
    )
    .await
}

/// One event, whole (the console's event detail), for those who may look up audit events.
pub async fn get_audit_event(
    s: &Services,
    caller: &Caller,
    event_id: uuid::Uuid,
) -> Result<AuditRow, AppError> {
    Op::run(
        s,
        caller,
        Kind::Read,
        Action::LookupAuditEvents,
        Resource::All,
        json!({"eventId": event_id}),
        async |op| {
            db::audit::find(op.conn(), event_id)
                .await?
                .ok_or_else(|| AppError::NotFound {
                    code: "ResourceNotFoundException",
                    message: format!("There is no audit event {event_id}"),
                })
        },
    )
    .await
}
