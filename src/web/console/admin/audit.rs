//! `/admin/audit`: the audit log with filters and keyset paging, and its export.

use super::*;

// ---- Audit log ------------------------------------------------------------------------------

#[derive(Deserialize, Default, Clone)]
pub(super) struct AuditQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    next: Option<String>,
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, String> {
        let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let time = |label: &str, s: &str| -> Result<Option<time::OffsetDateTime>, String> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            let formats = [
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]"),
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
            ];
            formats
                .iter()
                .find_map(|f| PrimitiveDateTime::parse(s, f).ok())
                .map(|t| Some(t.assume_utc()))
                .ok_or_else(|| format!("{label}: use the form 2026-11-27T10:00"))
        };
        Ok(AuditFilter {
            user_name: text(&self.user),
            event_name: text(&self.event),
            resource_prefix: text(&self.resource),
            outcome: text(&self.outcome),
            start_time: time("From", &self.from)?,
            end_time: time("To", &self.to)?,
        })
    }

    /// The filters as a query string (for the export link and paging).
    fn query_string(&self) -> String {
        serde_urlencoded::to_string([
            ("user", &self.user),
            ("event", &self.event),
            ("resource", &self.resource),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("to", &self.to),
        ])
        .unwrap_or_default()
    }
}

struct EventRow {
    id: String,
    time: String,
    user: String,
    event: String,
    resource: String,
    outcome: String,
    success: bool,
    source: String,
}

#[derive(Template)]
#[template(path = "admin/audit.html", blocks = ["content"])]
struct AuditPage {
    layout: Layout,
    filter: AuditQuery,
    outcomes: Vec<(&'static str, &'static str)>,
    query: String,
    events: Vec<EventRow>,
    next_link: Option<String>,
    error: Option<String>,
}
console_page!(AuditPage);

const OUTCOMES: [(&str, &str); 5] = [
    ("", "Any"),
    ("success", "Success"),
    ("failure", "Any failure"),
    ("AccessDenied", "AccessDenied"),
    ("ValidationException", "ValidationException"),
];

pub(super) async fn audit(
    state: web::Data<AppState>,
    user: SignedIn,
    query: web::Query<AuditQuery>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let query = query.into_inner();
    let mut page = AuditPage {
        layout: Layout::signed_in(&user, Section::Admin),
        query: query.query_string(),
        outcomes: OUTCOMES.to_vec(),
        events: Vec::new(),
        next_link: None,
        error: None,
        filter: query.clone(),
    };
    let filter = match query.filter() {
        Ok(f) => f,
        Err(message) => {
            // Refuse through the operation first, so that a user without the right sees 403.
            crate::ops::audit_log::lookup_audit_events(
                &state.services,
                &user.caller,
                &AuditFilter::default(),
                &Page {
                    next: None,
                    max: Some(1),
                },
            )
            .await?;
            page.error = Some(message);
            return render_with_status(hx, &page, StatusCode::BAD_REQUEST);
        }
    };
    let listed = crate::ops::audit_log::lookup_audit_events(
        &state.services,
        &user.caller,
        &filter,
        &Page {
            next: query.next.clone(),
            max: Some(100),
        },
    )
    .await?;
    page.events = listed
        .items
        .into_iter()
        .map(|e| EventRow {
            id: e.event_id.to_string(),
            time: display_time(e.event_time),
            user: e.user_name.unwrap_or_else(|| "—".into()),
            success: e.outcome == crate::audit::SUCCESS,
            event: e.event_name,
            resource: e.resource_arn.unwrap_or_default(),
            outcome: e.outcome,
            source: e.source_ip.unwrap_or_default(),
        })
        .collect();
    page.next_link = listed
        .next
        .map(|n| format!("/admin/audit?{}&next={n}", page.query));
    render_with_status(hx, &page, StatusCode::OK)
}

#[derive(Template)]
#[template(path = "admin/audit_event.html", blocks = ["content"])]
struct AuditEventPage {
    layout: Layout,
    event: crate::db::audit::AuditRow,
    time: String,
    success: bool,
    /// The request parameters, pretty-printed.
    parameters: String,
    prev_hash: String,
    hash: String,
}
console_page!(AuditEventPage);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `/admin/audit/events/{id}`: one event with every field, the list showing only some.
pub(super) async fn audit_event(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    // An id that is no UUID names no event; still refused first for those without the right.
    let id = uuid::Uuid::parse_str(&path).unwrap_or_default();
    let event = crate::ops::audit_log::get_audit_event(&state.services, &user.caller, id).await?;
    let parameters = serde_json::to_string_pretty(&event.parameters()).unwrap_or_default();
    let page = AuditEventPage {
        layout: Layout::signed_in(&user, Section::Admin),
        time: display_time(event.event_time),
        success: event.outcome == crate::audit::SUCCESS,
        parameters,
        prev_hash: event.prev_hash.as_deref().map(hex).unwrap_or_default(),
        hash: hex(&event.hash),
        event,
    };
    render_with_status(hx, &page, StatusCode::OK)
}

/// The filtered events as JSON Lines, newest first, streamed page by page: the export holds one
/// page in memory however long the log is. The first page is read before the answer starts, so
/// a refusal is a proper error page; a failure later ends the stream early (and is logged).
pub(super) async fn audit_export(
    state: web::Data<AppState>,
    user: SignedIn,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let filter = query.filter().map_err(ConsoleError::BadRequest)?;
    let first = export_page(&state, &user, &filter, None).await?;
    let pages = futures_util::stream::unfold(
        (Some(first), state, user, filter),
        |(page, state, user, filter)| async move {
            let (lines, next) = page?;
            let following = match next {
                None => None,
                Some(cursor) => match export_page(&state, &user, &filter, Some(cursor)).await {
                    Ok(page) => Some(page),
                    Err(e) => {
                        tracing::error!(error = %e, "the audit export stopped early");
                        None
                    }
                },
            };
            Some((
                Ok::<_, std::convert::Infallible>(web::Bytes::from(lines)),
                (following, state, user, filter),
            ))
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"sluice-audit.jsonl\"",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(pages))
}

/// One page of the export as JSON Lines, and the cursor of the next page.
async fn export_page(
    state: &AppState,
    user: &SignedIn,
    filter: &crate::db::audit::AuditFilter,
    next: Option<String>,
) -> Result<(String, Option<String>), ConsoleError> {
    let page = crate::ops::audit_log::lookup_audit_events(
        &state.services,
        &user.caller,
        filter,
        &Page {
            next,
            max: Some(crate::ops::audit_log::EXPORT_PAGE),
        },
    )
    .await?;
    let mut lines = String::new();
    for e in &page.items {
        let line = serde_json::json!({
            "eventId": e.event_id,
            "eventTime": e.event_time.format(&Rfc3339).unwrap_or_default(),
            "userName": e.user_name,
            "tokenId": e.token_id,
            "sourceIpAddress": e.source_ip,
            "userAgent": e.user_agent,
            "eventName": e.event_name,
            "resourceArn": e.resource_arn,
            "requestParameters": e.request_parameters,
            "outcome": e.outcome,
            "errorMessage": e.error_message,
            "requestId": e.request_id,
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    Ok((lines, page.next))
}
