//! An action's log as a provider writes it: each line masked (secrets become `****`), cut to the
//! longest line kept, counted against the attempt's budget, remembered in a short tail (for a
//! failure's summary) and handed to the flusher that writes lines to PostgreSQL in batches
//! (`workers::logs`). Writing never blocks and never fails: a provider's work does not wait on the
//! database, and a log that outgrows its budget ends with one line that says so.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use tokio::sync::mpsc;

/// The longest line kept, in characters; longer lines are cut and marked.
pub const LINE_LIMIT: usize = 8192;
/// What one attempt's log may hold, in bytes of text; the rest is counted, not kept.
pub const BUDGET: usize = 16 * 1024 * 1024;
/// Lines remembered for a failure's summary.
const TAIL: usize = 8;
/// Secrets shorter than this are not masked: masking `a` would hide every `a` in the log while
/// protecting nothing.
const SHORTEST_MASKED: usize = 4;

/// One line on its way to the database.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub at: OffsetDateTime,
    pub text: String,
}

struct State {
    used: usize,
    over: bool,
    tail: VecDeque<String>,
}

/// A handle to an attempt's log; clones write to the same log.
#[derive(Clone)]
pub struct Log {
    sender: Option<mpsc::UnboundedSender<Entry>>,
    masks: Arc<Vec<String>>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").finish_non_exhaustive()
    }
}

impl Log {
    /// A log whose lines go to `sender`, with these secrets masked.
    pub fn new(sender: mpsc::UnboundedSender<Entry>, secrets: Vec<String>) -> Log {
        Log {
            sender: Some(sender),
            masks: Arc::new(masks_of(secrets)),
            state: Arc::new(Mutex::new(State {
                used: 0,
                over: false,
                tail: VecDeque::new(),
            })),
        }
    }

    /// A log that keeps only its tail (for code paths that run outside a worker).
    pub fn discarding() -> Log {
        let mut log = Log::new(mpsc::unbounded_channel().0, Vec::new());
        log.sender = None;
        log
    }

    /// Writes one line (without its newline; a trailing `\r` is dropped).
    pub fn line(&self, text: &str) {
        let text = text.strip_suffix('\r').unwrap_or(text);
        let masked = mask(text, &self.masks);
        let kept = cut(&masked);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.tail.push_back(kept.clone());
        if state.tail.len() > TAIL {
            state.tail.pop_front();
        }
        if state.over {
            return;
        }
        let entry = if state.used + kept.len() > BUDGET {
            state.over = true;
            format!(
                "[Sluice] the log reached its limit of {} MiB; later lines are not kept",
                BUDGET / (1024 * 1024)
            )
        } else {
            state.used += kept.len();
            kept
        };
        if let Some(sender) = &self.sender {
            let _ = sender.send(Entry {
                at: OffsetDateTime::now_utc(),
                text: entry,
            });
        }
    }

    /// Writes every line of `text`.
    pub fn lines(&self, text: &str) {
        for line in text.lines() {
            self.line(line);
        }
    }

    /// The last lines written (masked), for a failure's summary.
    pub fn tail(&self) -> Vec<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.tail.iter().cloned().collect()
    }

    /// `; last lines of the log: …` for a failure's summary, or nothing when the log is empty.
    pub fn tail_summary(&self) -> String {
        let tail = self.tail();
        if tail.is_empty() {
            return String::new();
        }
        let mut out = String::from(TAIL_MARKER);
        for line in tail {
            out.push_str("\n  ");
            out.push_str(&line.chars().take(200).collect::<String>());
        }
        out
    }
}

/// Where a failure's summary starts quoting the log ([`Log::tail_summary`]).
const TAIL_MARKER: &str = "; last lines of the log:";

/// A failure's summary without the log tail it quotes: for where the log is shown anyway.
pub fn without_tail(summary: &str) -> &str {
    summary
        .split_once(TAIL_MARKER)
        .map_or(summary, |(head, _)| head)
}

/// The strings to hide: each secret, each line of a multi-line secret, and each value of a secret
/// that is a JSON object (a Command's `Secrets`), longest first (so a secret containing another
/// is hidden whole).
fn masks_of(secrets: Vec<String>) -> Vec<String> {
    let mut all = secrets.clone();
    for s in &secrets {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(s) {
            all.extend(map.values().filter_map(|v| v.as_str()).map(str::to_string));
        }
    }
    let mut masks: Vec<String> = all
        .iter()
        .flat_map(|s| std::iter::once(s.as_str()).chain(s.lines()))
        .map(|s| s.trim_end_matches('\r').to_string())
        .filter(|s| s.chars().count() >= SHORTEST_MASKED && !s.contains('\n'))
        .collect();
    masks.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    masks.dedup();
    masks
}

fn mask(text: &str, masks: &[String]) -> String {
    let mut out = text.to_string();
    for secret in masks {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "****");
        }
    }
    out
}

/// A line cut to [`LINE_LIMIT`] characters, marked when cut.
fn cut(text: &str) -> String {
    match text.char_indices().nth(LINE_LIMIT - 20) {
        None => text.to_string(),
        Some((end, _)) => format!("{} [line cut]", &text[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(secrets: &[&str]) -> (Log, mpsc::UnboundedReceiver<Entry>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Log::new(tx, secrets.iter().map(|s| s.to_string()).collect()),
            rx,
        )
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<Entry>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push(e.text);
        }
        out
    }

    #[test]
    fn secrets_are_masked_whole_and_line_by_line() {
        let (log, mut rx) = log(&[
            "hunter22",
            "abc",
            "first-line\nsecond-line",
            "hunter22-long",
            r#"{"npm": "tok-123456"}"#,
        ]);
        log.line("npm token tok-123456");
        log.line("token=hunter22 and hunter22-long; abc stays");
        log.line("second-line!\r");
        assert_eq!(
            drain(&mut rx),
            vec!["npm token ****", "token=**** and ****; abc stays", "****!"]
        );
        assert_eq!(log.tail().last().map(String::as_str), Some("****!"));
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let (log, mut rx) = log(&[]);
        log.line(&"é".repeat(LINE_LIMIT * 2));
        let lines = drain(&mut rx);
        assert!(lines[0].ends_with(" [line cut]"));
        assert!(lines[0].chars().count() <= LINE_LIMIT);
    }

    #[test]
    fn a_log_over_its_budget_says_so_once_and_keeps_its_tail() {
        let (log, mut rx) = log(&[]);
        let line = "x".repeat(LINE_LIMIT - 100);
        let fits = BUDGET / line.len();
        for _ in 0..fits + 50 {
            log.line(&line);
        }
        log.line("the end");
        let lines = drain(&mut rx);
        assert_eq!(lines.len(), fits + 1);
        assert!(lines[fits].contains("reached its limit"));
        assert_eq!(log.tail().last().map(String::as_str), Some("the end"));
    }

    #[test]
    fn the_tail_keeps_the_last_lines() {
        let log = Log::discarding();
        for i in 0..20 {
            log.line(&format!("line {i}"));
        }
        assert_eq!(log.tail().len(), TAIL);
        assert!(log.tail_summary().ends_with("line 19"));
        assert_eq!(Log::discarding().tail_summary(), "");
    }
}
