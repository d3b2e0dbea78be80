//! Approvals in the console: the inbox (`/approvals`, every waiting approval the user may
//! answer, and its count in the navigation), and an approval's review (a page, or a dialog over
//! the pipeline view with htmx) with Approve and Reject. Everything goes through
//! `ops::approvals`; answering is PutApprovalResult, so the console refuses exactly what the API
//! refuses, with the same audit events.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::{
    ConsoleError, Layout, Section, console_page, display_time, render_with_status, see_other,
    segment,
};
use crate::engine::approval::Verdict;
use crate::error::AppError;
use crate::ops::approvals::{self, Answer, ApprovalView, Since};
use crate::web::AppState;
use crate::web::auth::{CsrfForm, SignedIn};
use crate::web::htmx::HxRequest;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::web::get_only("/approvals", inbox))
        .service(crate::web::get_only("/approvals/count", count))
        .service(
            web::resource("/pipelines/{name}/approvals/{id}")
                .route(web::get().to(review_page))
                .route(web::post().to(answer))
                .default_service(web::to(super::method_not_allowed)),
        );
}

/// A source revision as approvers read it.
struct PromotedRow {
    action: String,
    commit: String,
    short: String,
    message: String,
    author: String,
}

fn promoted_rows(a: &ApprovalView) -> Vec<PromotedRow> {
    a.promoted
        .iter()
        .map(|p| PromotedRow {
            action: p.action_name.clone(),
            short: p.commit_id.chars().take(12).collect(),
            commit: p.commit_id.clone(),
            message: p.message.lines().next().unwrap_or_default().to_string(),
            author: p.author(),
        })
        .collect()
}

fn review_link(a: &ApprovalView) -> String {
    format!(
        "/pipelines/{}/approvals/{}",
        segment(&a.pipeline_name),
        a.id
    )
}

// ---- The inbox --------------------------------------------------------------------------------

struct InboxRow {
    pipeline: String,
    pipeline_link: String,
    stage: String,
    action: String,
    promoted: Vec<PromotedRow>,
    since: String,
    deadline: String,
    progress: Option<String>,
    review: String,
    reject_only: bool,
}

#[derive(Template)]
#[template(path = "approvals/inbox.html", blocks = ["content"])]
struct InboxPage {
    layout: Layout,
    rows: Vec<InboxRow>,
    /// How many wait for the user in all (the page shows at most `INBOX_PAGE`).
    total: usize,
    next: Option<String>,
    notice: Option<String>,
}
console_page!(InboxPage);

#[derive(Deserialize)]
struct InboxQuery {
    done: Option<String>,
    after: Option<String>,
}

async fn inbox(
    state: web::Data<AppState>,
    user: SignedIn,
    query: web::Query<InboxQuery>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let inbox = approvals::inbox(&state.services, &user.caller, query.after.as_deref()).await?;
    let rows = inbox
        .items
        .into_iter()
        .map(|p| {
            let a = &p.approval;
            InboxRow {
                pipeline_link: format!("/pipelines/{}", segment(&a.pipeline_name)),
                pipeline: a.pipeline_name.clone(),
                stage: a.stage_name.clone(),
                action: a.action_name.clone(),
                promoted: promoted_rows(a),
                since: display_time(a.requested_at),
                deadline: display_time(a.deadline),
                progress: (a.rules.required() > 1)
                    .then(|| format!("{} of {} approvals", a.approvals(), a.rules.required())),
                review: review_link(a),
                reject_only: p.reject_only.is_some(),
            }
        })
        .collect();
    let page = InboxPage {
        layout: Layout::signed_in(&user, Section::Approvals),
        rows,
        total: inbox.total,
        next: inbox.next.map(|n| segment(&n)),
        notice: match query.done.as_deref() {
            Some("Approved") => Some("Approved.".to_string()),
            Some("Rejected") => Some("Rejected.".to_string()),
            Some("Counted") => Some("Your approval is recorded; more are needed.".to_string()),
            _ => None,
        },
    };
    render_with_status(hx, &page, StatusCode::OK)
}

#[derive(Template)]
#[template(path = "approvals/count.html")]
struct CountFragment {
    count: usize,
}

/// The navigation's count: how many approvals the user may answer (empty when none).
async fn count(state: web::Data<AppState>, user: SignedIn) -> Result<HttpResponse, ConsoleError> {
    let count = approvals::inbox_count(&state.services, &user.caller).await?;
    let html = CountFragment { count }
        .render()
        .map_err(|e| ConsoleError::Internal(anyhow::Error::new(e).context("rendering a count")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(html))
}

// ---- The review -------------------------------------------------------------------------------

struct DecisionRow {
    who: String,
    approved: bool,
    comment: String,
    when: String,
    address: String,
}

struct SinceRow {
    action: String,
    /// What the list is, in words.
    heading: String,
    commits: Vec<(String, String, String)>,
}

/// Everything the review shows (the page and the dialog render the same body).
struct Review {
    name: String,
    link: String,
    id: String,
    stage: String,
    action: String,
    execution: String,
    execution_short: String,
    status: super::executions::Status,
    outcome: Option<String>,
    custom_data: Option<String>,
    external_link: Option<String>,
    promoted: Vec<PromotedRow>,
    since: Vec<SinceRow>,
    decisions: Vec<DecisionRow>,
    progress: Option<String>,
    rules: Vec<String>,
    requested: String,
    deadline: String,
    token: String,
    can_answer: bool,
    reject_only: bool,
    note: Option<String>,
    require_comment: bool,
    /// What was typed, when the answer was refused.
    comment: String,
    error: Option<String>,
    /// Where to go back to: the inbox or the pipeline.
    from: String,
}

#[derive(Template)]
#[template(path = "approvals/review.html", blocks = ["content"])]
struct ReviewPage {
    layout: Layout,
    review: Review,
}
console_page!(ReviewPage);

#[derive(Template)]
#[template(path = "approvals/dialog.html")]
struct ReviewDialog {
    layout: Layout,
    review: Review,
}

fn commit_rows(commits: &[approvals::Commit]) -> Vec<(String, String, String)> {
    commits
        .iter()
        .map(|c| {
            (
                c.id.chars().take(12).collect(),
                c.message.clone(),
                c.author.clone(),
            )
        })
        .collect()
}

fn review_of(r: approvals::Review, from: &str, comment: String, error: Option<String>) -> Review {
    let a = r.approval;
    let since = r
        .since
        .into_iter()
        .map(|(action, since)| match since {
            Since::FirstApproval => SinceRow {
                action,
                heading: "No earlier execution was approved here.".into(),
                commits: Vec::new(),
            },
            Since::Commits { since, commits } if commits.is_empty() => SinceRow {
                action,
                heading: format!(
                    "The same commit as the last approved execution ({}): nothing new.",
                    since.chars().take(12).collect::<String>()
                ),
                commits: Vec::new(),
            },
            Since::Commits { since, commits } => SinceRow {
                action,
                heading: format!(
                    "{} new commit{} since {}:",
                    commits.len(),
                    if commits.len() == 1 { "" } else { "s" },
                    since.chars().take(12).collect::<String>()
                ),
                commits: commit_rows(&commits),
            },
            Since::Unknown { since, shown } => SinceRow {
                action,
                heading: format!(
                    "The last approved commit ({}) is not among the {} latest; the newest are:",
                    since.chars().take(12).collect::<String>(),
                    shown.len()
                ),
                commits: commit_rows(&shown),
            },
        })
        .collect();
    Review {
        link: segment(&a.pipeline_name),
        id: a.id.to_string(),
        stage: a.stage_name.clone(),
        action: a.action_name.clone(),
        execution: a.execution_id.to_string(),
        execution_short: a.execution_id.simple().to_string()[..8].to_string(),
        status: super::executions::Status::of(a.outcome.as_deref().unwrap_or("InProgress")),
        outcome: a.outcome.clone(),
        custom_data: a.custom_data.clone(),
        external_link: a.external_entity_link.clone(),
        promoted: promoted_rows(&a),
        since,
        decisions: a
            .decisions
            .iter()
            .map(|d| DecisionRow {
                who: d.user_name.clone(),
                approved: d.approved,
                comment: d.comment.clone(),
                when: display_time(d.decided_at),
                address: d.source_address.clone().unwrap_or_default(),
            })
            .collect(),
        progress: (a.rules.required() > 1)
            .then(|| format!("{} of {} approvals", a.approvals(), a.rules.required())),
        rules: a.rules.describe(),
        requested: display_time(a.requested_at),
        deadline: display_time(a.deadline),
        token: a.token.to_string(),
        can_answer: r.can_answer,
        reject_only: r.reject_only,
        note: r.note,
        require_comment: a.rules.require_comment(),
        comment,
        error,
        from: if from == "inbox" { "inbox" } else { "pipeline" }.to_string(),
        name: a.pipeline_name,
    }
}

fn approval_id(text: &str) -> Result<Uuid, ConsoleError> {
    Uuid::parse_str(text).map_err(|_| ConsoleError::NotFound)
}

#[derive(Deserialize)]
struct ReviewQuery {
    /// `1`: the dialog, for htmx.
    dialog: Option<String>,
    from: Option<String>,
}

async fn review_page(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<(String, String)>,
    query: web::Query<ReviewQuery>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let (name, id) = path.into_inner();
    let id = approval_id(&id)?;
    let r = approvals::review(&state.services, &user.caller, &name, id).await?;
    let review = review_of(
        r,
        query.from.as_deref().unwrap_or_default(),
        String::new(),
        None,
    );
    let layout = Layout::signed_in(&user, Section::Approvals);
    if hx.0 && query.dialog.as_deref() == Some("1") {
        let html = ReviewDialog { layout, review }.render().map_err(|e| {
            ConsoleError::Internal(anyhow::Error::new(e).context("rendering a dialog"))
        })?;
        return Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((actix_web::http::header::VARY, "HX-Request"))
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .body(html));
    }
    render_with_status(hx, &ReviewPage { layout, review }, StatusCode::OK)
}

#[derive(Deserialize)]
struct AnswerForm {
    /// The stage and action the approval is stored under (the token must be theirs).
    stage: String,
    action: String,
    token: String,
    decision: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    from: String,
}

async fn answer(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: CsrfForm<AnswerForm>,
    hx: HxRequest,
) -> Result<HttpResponse, ConsoleError> {
    let user = &form.user;
    let (name, id) = path.into_inner();
    let id = approval_id(&id)?;
    let s = &state.services;
    let f = &form.form;
    // Browsers send the text with CRLF line breaks; the comment is kept as typed otherwise.
    let comment = f.comment.replace("\r\n", "\n");
    let result = match Answer::parse(&f.decision) {
        Some(decision) => {
            approvals::put_approval_result(
                s,
                &user.caller,
                &name,
                &f.stage,
                &f.action,
                &f.token,
                decision,
                &comment,
            )
            .await
        }
        None => Err(AppError::validation("decision", "choose Approve or Reject")),
    };
    match result {
        Ok(done) => {
            let outcome = match done.verdict {
                Verdict::Approved => "Approved",
                Verdict::Rejected => "Rejected",
                Verdict::Counted { .. } => "Counted",
            };
            Ok(see_other(&if f.from == "inbox" {
                format!("/approvals?done={outcome}")
            } else {
                format!("/pipelines/{}?approval={outcome}", segment(&name))
            }))
        }
        Err(AppError::AccessDenied(denied)) => Err(AppError::AccessDenied(denied).into()),
        Err(e @ (AppError::Validation { .. } | AppError::Rejected { .. })) => {
            let message = match &e {
                AppError::Validation { message, .. } => message.clone(),
                other => other.public_message(),
            };
            // Shown again as it is now, with what was typed.
            let r = approvals::review(s, &user.caller, &name, id).await?;
            let review = review_of(r, &f.from, comment, Some(message));
            let page = ReviewPage {
                layout: Layout::signed_in(user, Section::Approvals),
                review,
            };
            render_with_status(hx, &page, StatusCode::BAD_REQUEST)
        }
        Err(other) => Err(other.into()),
    }
}
