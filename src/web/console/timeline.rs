//! An execution's timeline, Gantt-style: a row per stage and per action attempt, each bar split
//! into the time it waited (in the queue for a worker, or for an approval's answer) and the time
//! it ran. Pure: positions are computed here and drawn by the server as inline SVG (attributes,
//! not styles, so the CSP holds; no charting script in the browser).

use time::OffsetDateTime;

/// Width of the drawing's coordinate space (the SVG's viewBox).
pub const WIDTH: f64 = 1000.0;

/// One attempt as the timeline needs it.
pub struct Span<'a> {
    pub stage: &'a str,
    pub action: &'a str,
    pub attempt: i32,
    /// Its console status class (`status-succeeded` …): the run bar's colour.
    pub class: &'a str,
    /// Created (queued, or the approval requested).
    pub queued: OffsetDateTime,
    /// A worker claimed it (none for an approval or while it waits).
    pub claimed: Option<OffsetDateTime>,
    /// It ended (none while it runs: the timeline's end then).
    pub ended: Option<OffsetDateTime>,
    /// An approval: all of its time is waiting.
    pub approval: bool,
}

/// A drawn row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    /// A stage's row (bold, spans its actions) or an action's.
    pub stage: bool,
    pub class: String,
    /// The waiting part: x and width in [0, WIDTH].
    pub wait: (f64, f64),
    /// The running part.
    pub run: (f64, f64),
    /// In words: "waited 1.2 s, ran 3.4 s".
    pub text: String,
}

impl Row {
    pub fn wait_x(&self) -> String {
        format!("{:.1}", self.wait.0)
    }
    pub fn wait_width(&self) -> String {
        format!("{:.1}", self.wait.1)
    }
    pub fn has_wait(&self) -> bool {
        self.wait.1 >= 0.5
    }
    pub fn run_x(&self) -> String {
        format!("{:.1}", self.run.0)
    }
    pub fn run_width(&self) -> String {
        format!("{:.1}", self.run.1)
    }
}

/// The timeline's rows and its scale's ticks: (x, label).
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub rows: Vec<Row>,
    pub ticks: Vec<(f64, String)>,
    pub total: String,
}

impl Timeline {
    /// The ticks' x positions, formatted for the drawing.
    pub fn tick_xs(&self) -> Vec<String> {
        self.ticks.iter().map(|(x, _)| format!("{x:.1}")).collect()
    }
}

/// Lays the spans out between the execution's start and `end` (its end, or now while it runs).
/// Spans come oldest first; stages keep the order they first appear in.
pub fn lay_out(start: OffsetDateTime, end: OffsetDateTime, spans: &[Span<'_>]) -> Timeline {
    let total = (end - start).as_seconds_f64().max(0.001);
    let x = |t: OffsetDateTime| ((t - start).as_seconds_f64() / total * WIDTH).clamp(0.0, WIDTH);
    let mut stages: Vec<&str> = Vec::new();
    for s in spans {
        if !stages.contains(&s.stage) {
            stages.push(s.stage);
        }
    }
    let mut rows = Vec::new();
    for stage in stages {
        let mine: Vec<&Span> = spans.iter().filter(|s| s.stage == stage).collect();
        let from = mine.iter().map(|s| s.queued).min().unwrap_or(start);
        let to = mine
            .iter()
            .map(|s| s.ended.unwrap_or(end))
            .max()
            .unwrap_or(end);
        let running = mine.iter().any(|s| s.ended.is_none());
        let failed = mine.iter().any(|s| s.class == "status-failed");
        rows.push(Row {
            label: stage.to_string(),
            stage: true,
            class: if running {
                "status-inprogress"
            } else if failed {
                "status-failed"
            } else {
                mine.last().map_or("status-none", |s| s.class)
            }
            .to_string(),
            wait: (x(from), 0.0),
            run: (x(from), (x(to) - x(from)).max(1.0)),
            text: format!(
                "{}{}",
                seconds(to - from),
                if running { " so far" } else { "" }
            ),
        });
        for s in mine {
            // Never before it was queued, whatever the clocks say.
            let ended = s.ended.unwrap_or(end).max(s.queued);
            let began = if s.approval {
                ended
            } else {
                s.claimed.unwrap_or(ended).max(s.queued).min(ended)
            };
            let waited = began - s.queued;
            let ran = ended - began;
            let label = if s.attempt > 1 {
                format!("{} (attempt {})", s.action, s.attempt)
            } else {
                s.action.to_string()
            };
            let text = if s.approval {
                format!("waited {} for approval", seconds(waited))
            } else if s.claimed.is_none() && s.ended.is_none() {
                format!("waiting {} for a worker", seconds(waited))
            } else {
                format!("waited {}, ran {}", seconds(waited), seconds(ran))
            };
            rows.push(Row {
                label,
                stage: false,
                class: s.class.to_string(),
                wait: (x(s.queued), x(began) - x(s.queued)),
                run: (x(began), (x(ended) - x(began)).max(1.0)),
                text,
            });
        }
    }
    Timeline {
        rows,
        ticks: ticks(total),
        total: seconds(end - start),
    }
}

/// Four or five round marks along the scale.
fn ticks(total: f64) -> Vec<(f64, String)> {
    let steps = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
        3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
    ];
    let step = steps
        .iter()
        .copied()
        .find(|s| total / s <= 5.0)
        .unwrap_or(86400.0);
    let mut out = Vec::new();
    let mut t = 0.0;
    while t <= total + 1e-9 && out.len() < 12 {
        out.push((t / total * WIDTH, label(t)));
        t += step;
    }
    out
}

fn label(t: f64) -> String {
    if t < 1.0 && t > 0.0 {
        format!("{:.1} s", t)
    } else if t < 120.0 {
        format!("{} s", t.round() as i64)
    } else if t < 7200.0 {
        format!("{} min", (t / 60.0).round() as i64)
    } else {
        format!("{} h", (t / 3600.0).round() as i64)
    }
}

fn seconds(d: time::Duration) -> String {
    let s = d.as_seconds_f64().max(0.0);
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 120.0 {
        format!("{} s", s.round() as i64)
    } else if s < 7200.0 {
        format!("{} min {} s", (s / 60.0) as i64, (s % 60.0) as i64)
    } else {
        format!(
            "{} h {} min",
            (s / 3600.0) as i64,
            ((s % 3600.0) / 60.0) as i64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn at(s: f64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds_f64(s)
    }

    #[test]
    fn waits_and_runs_are_placed_on_one_scale() {
        let spans = [
            Span {
                stage: "Source",
                action: "Checkout",
                attempt: 1,
                class: "status-succeeded",
                queued: at(0.0),
                claimed: Some(at(1.0)),
                ended: Some(at(2.0)),
                approval: false,
            },
            Span {
                stage: "Build",
                action: "Compile",
                attempt: 2,
                class: "status-inprogress",
                queued: at(2.0),
                claimed: Some(at(4.0)),
                ended: None,
                approval: false,
            },
        ];
        let t = lay_out(at(0.0), at(10.0), &spans);
        let labels: Vec<&str> = t.rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            ["Source", "Checkout", "Build", "Compile (attempt 2)"]
        );
        let checkout = &t.rows[1];
        assert_eq!(checkout.wait, (0.0, 100.0));
        assert_eq!(checkout.run, (100.0, 100.0));
        assert_eq!(checkout.text, "waited 1.0 s, ran 1.0 s");
        let compile = &t.rows[3];
        assert_eq!(compile.wait, (200.0, 200.0));
        assert_eq!(compile.run, (400.0, 600.0), "runs until now");
        assert_eq!(t.rows[2].class, "status-inprogress");
        assert!(t.rows[2].text.ends_with("so far"));
        assert_eq!(t.ticks.first(), Some(&(0.0, "0 s".to_string())));
        assert!(t.ticks.len() >= 3 && t.ticks.len() <= 6, "{:?}", t.ticks);
    }

    #[test]
    fn an_approval_only_waits_and_a_queued_action_says_so() {
        let spans = [
            Span {
                stage: "Approve",
                action: "Gate",
                attempt: 1,
                class: "status-succeeded",
                queued: at(0.0),
                claimed: None,
                ended: Some(at(60.0)),
                approval: true,
            },
            Span {
                stage: "Ship",
                action: "Deploy",
                attempt: 1,
                class: "status-inprogress",
                queued: at(60.0),
                claimed: None,
                ended: None,
                approval: false,
            },
        ];
        let t = lay_out(at(0.0), at(100.0), &spans);
        assert_eq!(t.rows[1].text, "waited 60 s for approval");
        assert_eq!(t.rows[1].wait, (0.0, 600.0));
        assert_eq!(t.rows[3].text, "waiting 40 s for a worker");
        // Bars never leave the drawing, however odd the clock.
        let odd = [Span {
            stage: "S",
            action: "A",
            attempt: 1,
            class: "status-failed",
            queued: at(-5.0),
            claimed: Some(at(500.0)),
            ended: Some(at(400.0)),
            approval: false,
        }];
        for r in lay_out(at(0.0), at(100.0), &odd).rows {
            for (x, w) in [r.wait, r.run] {
                assert!((0.0..=WIDTH).contains(&x) && x + w <= WIDTH + 1.0, "{r:?}");
            }
        }
    }
}
