//! Process-wide measurements for `/metrics`, kept in memory with atomics: HTTP request durations
//! by route, how long jobs wait to be claimed and how long a claimed action takes to start, action
//! durations by provider and outcome. What the database knows (queue depth, worker pools) is read
//! when scraped (`web::metrics`). Rendering is Prometheus' text exposition format, version 0.0.4.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

/// Bucket bounds (seconds) for latencies that should be milliseconds.
const FAST: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Bucket bounds (seconds) for actions, which take seconds to hours.
const SLOW: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
];

/// A cumulative histogram with fixed buckets.
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, plus +Inf.
    counts: Vec<AtomicU64>,
    /// The sum in microseconds (atomics hold integers).
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        let i = self
            .bounds
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in self.bounds.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

/// Histograms by label values, created on first use.
struct Family {
    bounds: &'static [f64],
    members: Mutex<BTreeMap<Vec<String>, std::sync::Arc<Histogram>>>,
}

impl Family {
    fn new(bounds: &'static [f64]) -> Self {
        Family {
            bounds,
            members: Mutex::new(BTreeMap::new()),
        }
    }

    fn observe(&self, labels: Vec<String>, seconds: f64) {
        let histogram = {
            let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
            members
                .entry(labels)
                .or_insert_with(|| std::sync::Arc::new(Histogram::new(self.bounds)))
                .clone()
        };
        histogram.observe(seconds);
    }

    fn render(&self, out: &mut String, name: &str, label_names: &[&str]) {
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        for (values, histogram) in members.iter() {
            let labels = label_names
                .iter()
                .zip(values)
                .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
                .collect::<Vec<_>>()
                .join(",");
            histogram.render(out, name, &labels);
        }
    }
}

/// A label value with `\`, `"` and newlines escaped.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Everything this process measures.
pub struct Metrics {
    http: Family,
    claim_latency: Histogram,
    start_latency: Histogram,
    actions: Family,
    live_open: AtomicU64,
    live_events: AtomicU64,
    live_dropped: AtomicU64,
    poll_rounds: AtomicU64,
    poll_ls_remotes: AtomicU64,
    hook_deliveries: AtomicU64,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    http: Family::new(FAST),
    claim_latency: Histogram::new(FAST),
    start_latency: Histogram::new(FAST),
    actions: Family::new(SLOW),
    live_open: AtomicU64::new(0),
    live_events: AtomicU64::new(0),
    live_dropped: AtomicU64::new(0),
    poll_rounds: AtomicU64::new(0),
    poll_ls_remotes: AtomicU64::new(0),
    hook_deliveries: AtomicU64::new(0),
});

/// A polling round ended, having asked `repositories` repositories.
pub fn polled(repositories: usize) {
    METRICS.poll_rounds.fetch_add(1, Ordering::Relaxed);
    METRICS.poll_ls_remotes.fetch_add(
        u64::try_from(repositories).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

/// A push webhook delivery was received (whatever became of it).
pub fn hook_delivery() {
    METRICS.hook_deliveries.fetch_add(1, Ordering::Relaxed);
}

/// A live stream opened (`true`) or ended.
pub fn live_stream(opened: bool) {
    if opened {
        METRICS.live_open.fetch_add(1, Ordering::Relaxed);
    } else {
        METRICS.live_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A live stream sent an event with changed parts.
pub fn live_event_sent() {
    METRICS.live_events.fetch_add(1, Ordering::Relaxed);
}

/// A live stream's client fell so far behind that it was dropped.
pub fn live_client_dropped() {
    METRICS.live_dropped.fetch_add(1, Ordering::Relaxed);
}

/// A request answered: its method, its route pattern (`/pipelines/{name}`, never the path
/// itself, so names do not multiply the series) and its status class.
pub fn http_request(method: &str, route: &str, status: u16, seconds: f64) {
    METRICS.http.observe(
        vec![
            method.to_string(),
            route.to_string(),
            format!("{}xx", status / 100),
        ],
        seconds,
    );
}

/// A job was claimed this long after it became runnable (for an action after another, the
/// transition latency: the predecessor's completion committed the job).
pub fn job_claimed(waited_seconds: f64) {
    METRICS.claim_latency.observe(waited_seconds);
}

/// A claimed action's provider started this long after the claim.
pub fn action_started(seconds: f64) {
    METRICS.start_latency.observe(seconds);
}

/// An action attempt ended.
pub fn action_finished(provider: &str, succeeded: bool, seconds: f64) {
    METRICS.actions.observe(
        vec![
            provider.to_string(),
            if succeeded { "Succeeded" } else { "Failed" }.to_string(),
        ],
        seconds,
    );
}

/// This process's measurements, in the text format.
pub fn render(out: &mut String) {
    let m = &*METRICS;
    out.push_str("# HELP sluice_http_request_duration_seconds HTTP requests by method, route pattern and status class.\n# TYPE sluice_http_request_duration_seconds histogram\n");
    m.http.render(
        out,
        "sluice_http_request_duration_seconds",
        &["method", "route", "status"],
    );
    out.push_str("# HELP sluice_job_claim_latency_seconds From a job becoming runnable to a worker claiming it (for an action after another: the transition latency).\n# TYPE sluice_job_claim_latency_seconds histogram\n");
    m.claim_latency
        .render(out, "sluice_job_claim_latency_seconds", "");
    out.push_str("# HELP sluice_action_start_latency_seconds From a claim to the action's provider starting.\n# TYPE sluice_action_start_latency_seconds histogram\n");
    m.start_latency
        .render(out, "sluice_action_start_latency_seconds", "");
    out.push_str("# HELP sluice_action_duration_seconds Action attempts run by this process, by provider and outcome.\n# TYPE sluice_action_duration_seconds histogram\n");
    m.actions.render(
        out,
        "sluice_action_duration_seconds",
        &["provider", "outcome"],
    );
    let _ = writeln!(
        out,
        "# HELP sluice_live_streams Live console streams open on this process.\n# TYPE sluice_live_streams gauge\nsluice_live_streams {}",
        m.live_open.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP sluice_live_events_total Events with changed parts sent to live streams.\n# TYPE sluice_live_events_total counter\nsluice_live_events_total {}",
        m.live_events.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP sluice_live_clients_dropped_total Live streams dropped because their client fell behind.\n# TYPE sluice_live_clients_dropped_total counter\nsluice_live_clients_dropped_total {}",
        m.live_dropped.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP sluice_poll_rounds_total Polling rounds this process ran (as the leader).\n# TYPE sluice_poll_rounds_total counter\nsluice_poll_rounds_total {}",
        m.poll_rounds.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP sluice_poll_ls_remote_total Repositories asked by polling (one git ls-remote each, however many pipelines watch them).\n# TYPE sluice_poll_ls_remote_total counter\nsluice_poll_ls_remote_total {}",
        m.poll_ls_remotes.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP sluice_hook_deliveries_total Push webhook deliveries received.\n# TYPE sluice_hook_deliveries_total counter\nsluice_hook_deliveries_total {}",
        m.hook_deliveries.load(Ordering::Relaxed)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_renders_cumulative_buckets_sum_and_count() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(7.0);
        h.observe(f64::NAN);
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert_eq!(
            out,
            "x_bucket{a=\"b\",le=\"0.1\"} 2\nx_bucket{a=\"b\",le=\"1\"} 3\nx_bucket{a=\"b\",le=\"+Inf\"} 4\nx_sum{a=\"b\"} 7.55\nx_count{a=\"b\"} 4\n"
        );
        let mut bare = String::new();
        Histogram::new(&[1.0]).render(&mut bare, "y", "");
        assert!(
            bare.contains("y_bucket{le=\"+Inf\"} 0\ny_sum 0\ny_count 0"),
            "{bare}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
