//! Authorization: IAM-style policies and the one decision function (`docs/access-control.md`).
//!
//! Pure logic: no IO, no clock. Handlers build a [`Principal`] (from the database, once per
//! request), call [`authorize`] before acting, and hand templates booleans computed by
//! [`is_allowed`]: the same decision, without building the refusal's explanation.

mod action;
mod arn;
mod eval;
mod glob;
pub mod managed;
mod policy;

#[cfg(test)]
mod tests;

pub use action::{Action, EventName, ResourceKind, Service, SessionEvent, UnknownAction};
pub use arn::{Resource, ResourceArn, ResourcePattern};
pub use eval::{
    Decision, Denied, DenyReason, Evaluation, MatchedStatement, NamedPolicy, PolicySet, Principal,
    authorize, is_allowed,
};
pub use policy::{
    ActionMatch, ActionPattern, Effect, MAX_DOCUMENT_CHARS, PolicyDocument, PolicyError,
    PolicyErrors, ResourceMatch, Statement,
};
