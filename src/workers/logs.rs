//! Writes an attempt's log lines to PostgreSQL as they come: the lines that arrive within
//! [`FLUSH_EVERY`] of each other go in one statement, so a chatty build costs a few writes a
//! second and a quiet one shows each line within a fraction of a second.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::db;
use crate::providers::log::Entry;

/// How long a line may wait for others before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// The most lines written in one statement.
const MAX_BATCH: usize = 2000;
/// Writes tried before a batch is dropped (the log is best effort; the action's result is not).
const TRIES: u32 = 3;

/// Whose log it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// An action attempt's.
    Attempt(Uuid),
    /// One host's, of a fleet deploy's attempt.
    Host(Uuid, i32),
}

impl Target {
    async fn last_line(self, conn: &mut sqlx::PgConnection) -> Result<i32, sqlx::Error> {
        match self {
            Target::Attempt(id) => db::logs::last_line(conn, id).await,
            Target::Host(id, position) => db::deployments::last_log_line(conn, id, position).await,
        }
    }

    async fn append(
        self,
        conn: &mut sqlx::PgConnection,
        first: i32,
        at: &[time::OffsetDateTime],
        text: &[String],
    ) -> Result<(), sqlx::Error> {
        match self {
            Target::Attempt(id) => db::logs::append(conn, id, first, at, text).await,
            Target::Host(id, position) => {
                db::deployments::append_log(conn, id, position, first, at, text).await
            }
        }
    }
}

/// Starts the flusher of `target`'s log; it ends once every sender is dropped and the last
/// lines are written.
pub fn start(pool: PgPool, target: Target) -> (mpsc::UnboundedSender<Entry>, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, tokio::spawn(flush(pool, target, rx)))
}

async fn flush(pool: PgPool, target: Target, mut rx: mpsc::UnboundedReceiver<Entry>) {
    // An attempt picked up again after its worker died continues its log.
    let mut next = match pool.acquire().await {
        Ok(mut conn) => target.last_line(&mut conn).await.unwrap_or(0) + 1,
        Err(_) => 1,
    };
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::sleep(FLUSH_EVERY);
        tokio::pin!(deadline);
        while batch.len() < MAX_BATCH {
            tokio::select! {
                entry = rx.recv() => match entry {
                    Some(entry) => batch.push(entry),
                    None => break,
                },
                () = &mut deadline => break,
            }
        }
        let at: Vec<_> = batch.iter().map(|e| e.at).collect();
        let text: Vec<_> = batch.into_iter().map(|e| e.text).collect();
        for attempt in 1..=TRIES {
            let written = async {
                let mut conn = pool.acquire().await?;
                target.append(&mut conn, next, &at, &text).await
            }
            .await;
            match written {
                Ok(()) => break,
                Err(e) if attempt == TRIES => {
                    tracing::warn!(error = %e, log = ?target, lines = text.len(), "log lines could not be written; dropped");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await,
            }
        }
        next = next.saturating_add(i32::try_from(text.len()).unwrap_or(i32::MAX));
    }
}
