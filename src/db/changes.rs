//! What the database announces when a commit changes something a console page shows: triggers
//! (migration `live`) notify one channel, and each server process listens to it once.

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

/// The channel the triggers notify.
pub const CHANNEL: &str = "sluice_changes";

/// One announced change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// A pipeline's executions, transitions, approvals or versions changed (or it was deleted).
    Pipeline(Uuid),
    /// New lines in an attempt's log.
    Log(Uuid),
    /// A session ended (signed out, revoked, expired, its user's password reset).
    SessionEnded(Uuid),
    /// Policies, attachments, group members or users changed: anyone's access may differ.
    Access,
    /// The number of open approvals changed somewhere.
    Gates,
    /// The listener (re)connected: anything may have changed while it was not listening.
    Resync,
}

impl Change {
    /// Reads a notification's payload; `None` for one this binary does not know.
    pub fn parse(payload: &str) -> Option<Change> {
        let id = |text: &str| Uuid::parse_str(text).ok();
        match payload.split_once(':') {
            Some(("p", rest)) => id(rest).map(Change::Pipeline),
            Some(("l", rest)) => id(rest).map(Change::Log),
            Some(("s", rest)) => id(rest).map(Change::SessionEnded),
            None if payload == "access" => Some(Change::Access),
            None if payload == "gates" => Some(Change::Gates),
            _ => None,
        }
    }
}

/// A dedicated connection listening on [`CHANNEL`].
pub async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_as_changes() {
        let id = Uuid::nil();
        assert_eq!(
            Change::parse(&format!("p:{id}")),
            Some(Change::Pipeline(id))
        );
        assert_eq!(Change::parse(&format!("l:{id}")), Some(Change::Log(id)));
        assert_eq!(
            Change::parse(&format!("s:{id}")),
            Some(Change::SessionEnded(id))
        );
        assert_eq!(Change::parse("access"), Some(Change::Access));
        assert_eq!(Change::parse("gates"), Some(Change::Gates));
        for junk in ["", "p:", "p:nope", "x:1", "accessible", "p"] {
            assert_eq!(Change::parse(junk), None, "{junk}");
        }
    }
}
