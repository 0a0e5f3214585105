//! What a run measured, as a [`Report`]: printed for people (its `Display`) and as one
//! JSON line for scripts ([`Report::summary_line`]).

use std::{
    collections::BTreeMap,
    fmt,
    time::{Duration, SystemTime},
};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency a histogram holds: an hour, in microseconds. Larger values are
/// recorded as this (a run never waits that long).
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds with three significant digits.
pub(super) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// Records `to - from` (zero if `to` is earlier: the same clock, but a server's timestamp
/// may be taken a hair before the generator's).
pub(super) fn record(histogram: &mut Histogram<u64>, from: SystemTime, to: SystemTime) {
    let micros = to.duration_since(from).unwrap_or_default().as_micros();
    histogram.saturating_record(u64::try_from(micros).unwrap_or(MAX_MICROS));
}

/// Percentiles of one latency, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Latency {
    /// The percentiles of `histogram` (microseconds).
    pub(super) fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// What the generator itself cost, so that a reader can tell it was not the bottleneck.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct GeneratorCost {
    /// User + system CPU time of the generator's process over the measured phase
    /// (sending, and polling until complete).
    pub cpu_ms: f64,
    /// HTTP requests it made: the POSTs and the completion polls.
    pub http_requests: usize,
    /// CPU per measured sign-up (its POST and its share of the polls), microseconds.
    pub cpu_us_per_signup: f64,
    /// CPU per HTTP request, microseconds.
    pub cpu_us_per_request: f64,
}

/// The warm-up, in brief.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Warmup {
    /// Sign-ups accepted.
    pub accepted: usize,
    /// Sign-ups complete before measuring began.
    pub completed: usize,
}

/// Everything a run measured. Rates and latencies are of the measured phase only.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// The offered rate (sign-ups/s), `None` for as fast as possible.
    pub target_rate: Option<f64>,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// POSTs sent.
    pub sent: usize,
    /// POSTs answered `201`.
    pub accepted: usize,
    /// The others, by status code or failure kind.
    pub rejected: BTreeMap<String, usize>,
    /// Accepted sign-ups whose profile and sent mail were both seen.
    pub completed: usize,
    /// Accepted sign-ups whose profile was not seen before the timeout.
    pub profile_missing: usize,
    /// Accepted sign-ups whose sent mail was not seen before the timeout.
    pub mail_missing: usize,
    /// Whether the completion timeout ended the wait (some sign-ups are incomplete).
    pub timed_out: bool,
    /// Seconds from the first POST sent to the last answered.
    pub post_seconds: f64,
    /// Accepted POSTs per second over `post_seconds`.
    pub post_per_second: f64,
    /// Seconds from the first POST sent to the last completion (by the services' clocks).
    pub end_to_end_seconds: f64,
    /// Completed sign-ups per second over `end_to_end_seconds`.
    pub end_to_end_per_second: f64,
    /// Open loop: the most a POST started behind its schedule, in ms.
    pub schedule_lag_max_ms: f64,
    /// POST sent → `201`.
    pub post: Latency,
    /// POST sent → profile written (`projected_at`).
    pub profile: Latency,
    /// POST sent → mail accepted by the SMTP server (`sent_at`).
    pub mail: Latency,
    /// Effect times that came from polling instead of a server timestamp.
    pub estimated_timestamps: usize,
    /// What the generator cost.
    pub generator: GeneratorCost,
    /// The warm-up, if there was one.
    pub warmup: Option<Warmup>,
}

impl Report {
    /// One line of JSON, `{"summary":{…}}`, the last line the `load` tool prints.
    pub fn summary_line(&self) -> String {
        /// `{"summary": report}`, with the report's fields in declaration order.
        #[derive(Serialize)]
        struct Summary<'a> {
            summary: &'a Report,
        }
        serde_json::to_string(&Summary { summary: self }).unwrap_or_default()
    }

    /// Whether every sent sign-up was accepted and completed end to end.
    pub fn all_complete(&self) -> bool {
        self.sent > 0 && self.accepted == self.sent && self.completed == self.accepted
    }
}

/// Seconds between two wall-clock times, zero if they are the wrong way round.
pub(super) fn seconds(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// `count / seconds`, zero for an empty interval.
pub(super) fn per_second(count: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offered = self.target_rate.map_or_else(
            || "as fast as possible".to_owned(),
            |rate| format!("{rate:.0}/s"),
        );
        writeln!(
            f,
            "offered: {offered}, {} in flight at most",
            self.concurrency
        )?;
        if let Some(warmup) = self.warmup {
            writeln!(
                f,
                "warm-up: {} accepted, {} complete (not counted below)",
                warmup.accepted, warmup.completed
            )?;
        }
        let rejected = if self.rejected.is_empty() {
            "none".to_owned()
        } else {
            let parts: Vec<String> = self
                .rejected
                .iter()
                .map(|(reason, count)| format!("{count} × {reason}"))
                .collect();
            parts.join(", ")
        };
        writeln!(
            f,
            "sign-ups: {} sent, {} accepted, rejected: {rejected}",
            self.sent, self.accepted
        )?;
        writeln!(
            f,
            "completed end to end: {} of {} (profile missing {}, mail missing {}){}",
            self.completed,
            self.accepted,
            self.profile_missing,
            self.mail_missing,
            if self.timed_out {
                " — completion timeout reached"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "POST: {:.0}/s over {:.2} s; end to end: {:.0} sign-ups/s over {:.2} s (first POST → last mail or profile)",
            self.post_per_second,
            self.post_seconds,
            self.end_to_end_per_second,
            self.end_to_end_seconds
        )?;
        if self.target_rate.is_some() {
            writeln!(
                f,
                "schedule: POSTs started at most {:.1} ms late",
                self.schedule_lag_max_ms
            )?;
        }
        writeln!(
            f,
            "latency (ms)              p50       p90       p99     p99.9       max     count"
        )?;
        for (name, latency) in [
            ("POST → 201", self.post),
            ("POST → profile visible", self.profile),
            ("POST → mail sent", self.mail),
        ] {
            writeln!(
                f,
                "  {name:<22} {:>8.2}  {:>8.2}  {:>8.2}  {:>8.2}  {:>8.2}  {:>8}",
                latency.p50_ms,
                latency.p90_ms,
                latency.p99_ms,
                latency.p999_ms,
                latency.max_ms,
                latency.count
            )?;
        }
        if self.estimated_timestamps > 0 {
            writeln!(
                f,
                "note: {} effect times are poll times (the service gave no timestamp)",
                self.estimated_timestamps
            )?;
        }
        write!(
            f,
            "generator: {:.0} ms CPU for {} HTTP requests: {:.0} µs per sign-up, {:.0} µs per request",
            self.generator.cpu_ms,
            self.generator.http_requests,
            self.generator.cpu_us_per_signup,
            self.generator.cpu_us_per_request
        )
    }
}
