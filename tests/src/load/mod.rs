//! The load generator: drives running services like real clients and measures how fast
//! sign-ups go through, end to end.
//!
//! [`run`] sends the sign-ups of a [`Plan`] (`POST /users`, unique addresses, at a fixed
//! rate or as fast as `concurrency` allows), waits until the consumers' counters on
//! `/metrics` say every accepted one has its profile and its welcome mail, then reads
//! when each happened (through the services' public HTTP APIs only), and returns a
//! [`Report`]: counts, rates and HDR latency percentiles. [`drive`] and
//! [`Driven::collect`] are its two halves, for the benchmark, which measures the system
//! during the first only.
//! The `load` binary is this with a command line; the benchmark and the smoke test call
//! it as a library.
//!
//! - `plan`: what to send, when each sign-up is due;
//! - `send`: the POSTs (open or closed loop);
//! - `counters`: when the phase is complete, from two counters;
//! - `track`: when each profile and mail happened, read afterwards;
//! - `report`: the figures, for people and as one JSON line;
//! - `progress`: the bars.

mod counters;
mod plan;
mod progress;
mod report;
mod send;
mod track;

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use hdrhistogram::Histogram;
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

use self::{
    counters::Counters,
    progress::Bars,
    report::{histogram, per_second, record, seconds},
    send::{Outlets, Sent},
    track::{Board, Effect, Tracked, Tracker},
};
pub use self::{
    plan::{DEFAULT_COMPLETE_TIMEOUT, DEFAULT_CONCURRENCY, DEFAULT_COUNT, Plan, Targets},
    report::{GeneratorCost, Latency, Report, Warmup},
};
use crate::procfs::{self, Pid};
pub(crate) use counters::sum_of;

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `plan`: the warm-up if any, then the measured sign-ups; returns what the
/// measured ones did. Fails only if no HTTP client can be built: unreachable services
/// show up as rejections in the report.
pub async fn run(plan: &Plan) -> anyhow::Result<Report> {
    Ok(drive(plan).await?.collect().await)
}

/// The first half of [`run`]: the warm-up if any, then the measured sign-ups sent and
/// waited for until the consumers' counters say each has its profile and its mail. When
/// each effect happened is read afterwards, by [`Driven::collect`], so that a caller
/// measuring the system (the benchmark) can stop measuring before those reads.
pub async fn drive(plan: &Plan) -> anyhow::Result<Driven> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(plan.concurrency.max(16))
        .build()?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let bars = Bars::new(plan.progress);
    let warmup = if plan.warmup > 0 {
        let warm = Plan {
            count: Some(plan.warmup),
            duration: None,
            ..plan.clone()
        };
        let label = format!("load-{}-w", &run_id[..12]);
        let sent = send_and_wait(&http, &warm, &label, "warm-up", &bars).await;
        let phase = collect(&http, &warm, sent).await;
        let complete = complete(&phase);
        Some(Warmup {
            accepted: phase.sent.accepted.len(),
            completed: complete.count(),
        })
    } else {
        None
    };
    let cpu_before = procfs::cpu_time(Pid::Current);
    let label = format!("load-{}-", &run_id[..12]);
    let measured = send_and_wait(&http, plan, &label, "measured", &bars).await;
    Ok(Driven {
        plan: plan.clone(),
        http,
        measured,
        warmup,
        cpu_before,
    })
}

/// A run whose sign-ups were sent and, as far as the counters tell, completed.
#[derive(Debug)]
pub struct Driven {
    plan: Plan,
    http: reqwest::Client,
    measured: SentPhase,
    warmup: Option<Warmup>,
    cpu_before: Option<Duration>,
}

impl Driven {
    /// The measured sign-ups that registration accepted: each one event, one profile
    /// and one mail to come.
    pub fn accepted(&self) -> usize {
        self.measured.sent.accepted.len()
    }

    /// Reads when each accepted sign-up's profile and mail happened (one request per
    /// sign-up to each consumer, or more for those not there yet) and makes the report.
    pub async fn collect(self) -> Report {
        let measured = collect(&self.http, &self.plan, self.measured).await;
        let cpu = procfs::cpu_time(Pid::Current)
            .zip(self.cpu_before)
            .map(|(after, before)| after.saturating_sub(before))
            .unwrap_or_default();
        report(&self.plan, &measured, self.warmup, cpu)
    }
}

/// A phase's sending and its wait for completion, with the accepted sign-ups queued for
/// the trackers.
#[derive(Debug)]
struct SentPhase {
    sent: Sent,
    /// One queue per effect, in [`EFFECTS`] order.
    queued: Vec<mpsc::UnboundedReceiver<Arc<send::Accepted>>>,
    /// Until when the trackers may look.
    deadline: Instant,
}

/// A phase's sign-ups and what the trackers found.
#[derive(Debug)]
struct Phase {
    sent: Sent,
    profile: Tracked,
    mail: Tracked,
    timed_out: bool,
}

/// The effects each sign-up has, in the order the trackers run.
const EFFECTS: [Effect; 2] = [Effect::Profile, Effect::Mail];

/// How long the trackers may still look after the counters gave up waiting: enough to
/// read what is there, not a second wait.
const GRACE_AFTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends the phase's sign-ups, then waits until the counters say they are complete or
/// the completion timeout passes. If the counters cannot be read (a service without
/// them), the trackers do the waiting instead, by looking until the deadline.
async fn send_and_wait(
    http: &reqwest::Client,
    plan: &Plan,
    label: &str,
    name: &str,
    bars: &Bars,
) -> SentPhase {
    let counters = Counters::new(http, &plan.targets);
    let baseline = counters.read().await;
    let sent_bar = bars.sending(name, plan.expected());
    let completion_bar = bars.completing(name);
    let (trackers, queued) = EFFECTS.iter().map(|_| mpsc::unbounded_channel()).unzip();
    let outlets = Outlets {
        trackers,
        sent_bar: sent_bar.clone(),
        completion_bar: completion_bar.clone(),
    };
    let sent = send::send(http, plan, label, outlets).await;
    sent_bar.finish();
    let mut deadline = Instant::now() + plan.complete_timeout;
    if let Some(baseline) = baseline {
        let expected = sent.accepted.len();
        let complete = counters
            .wait_for(baseline, expected, deadline, &completion_bar)
            .await;
        // Complete: the reads get a timeout of their own (10 000 of them take a while);
        // not complete: a short grace to read what is there, not a second wait.
        let reading = if complete {
            plan.complete_timeout
        } else {
            GRACE_AFTER_TIMEOUT
        };
        deadline = Instant::now() + reading;
    }
    completion_bar.finish();
    SentPhase {
        sent,
        queued,
        deadline,
    }
}

/// Runs one tracker per effect over the phase's accepted sign-ups. After a complete phase
/// every look finds its effect, so this is about one request per sign-up and effect.
async fn collect(http: &reqwest::Client, plan: &Plan, phase: SentPhase) -> Phase {
    let (_deadline_tx, deadline) = watch::channel(Some(phase.deadline));
    let board = Arc::new(Board::new(indicatif::ProgressBar::hidden()));
    let mut handles = Vec::new();
    for (effect, queued) in EFFECTS.into_iter().zip(phase.queued) {
        // Any instance answers for all: they share the service's database.
        let instances = match effect {
            Effect::Profile => &plan.targets.profiles,
            Effect::Mail => &plan.targets.emails,
        };
        let base = instances.first().cloned().unwrap_or_default();
        let tracker = Tracker {
            http: http.clone(),
            effect,
            base,
            board: board.clone(),
        };
        handles.push(tokio::spawn(tracker.run(queued, deadline.clone())));
    }
    let mut tracked = Vec::new();
    for handle in handles {
        tracked.push(handle.await.unwrap_or_default());
    }
    let mail = tracked.pop().unwrap_or_default();
    let profile = tracked.pop().unwrap_or_default();
    let sent = phase.sent;
    let timed_out = profile.at.len() < sent.accepted.len() || mail.at.len() < sent.accepted.len();
    Phase {
        sent,
        profile,
        mail,
        timed_out,
    }
}

/// The accepted sign-ups with both effects seen: when each was sent, and when its later
/// effect happened.
fn complete(phase: &Phase) -> impl Iterator<Item = (SystemTime, SystemTime)> + '_ {
    phase.sent.accepted.iter().filter_map(|accepted| {
        let profile = phase.profile.at.get(&accepted.index)?;
        let mail = phase.mail.at.get(&accepted.index)?;
        Some((accepted.sent, (*profile).max(*mail)))
    })
}

fn report(plan: &Plan, phase: &Phase, warmup: Option<Warmup>, cpu: Duration) -> Report {
    let sent = &phase.sent;
    let latencies = |tracked: &Tracked| -> Histogram<u64> {
        let mut latencies = histogram();
        for accepted in &sent.accepted {
            if let Some(at) = tracked.at.get(&accepted.index) {
                record(&mut latencies, accepted.sent, *at);
            }
        }
        latencies
    };
    let completed = complete(phase).count();
    let last_completion = complete(phase).map(|(_, done)| done).max();
    let post_seconds = sent
        .first_send
        .zip(sent.last_answer)
        .map_or(0.0, |(first, last)| seconds(first, last));
    let end_to_end_seconds = sent
        .first_send
        .zip(last_completion)
        .map_or(0.0, |(first, last)| seconds(first, last));
    let http_requests = sent.attempted + phase.profile.requests + phase.mail.requests;
    let cpu_us = cpu.as_secs_f64() * 1e6;
    Report {
        target_rate: plan.rate,
        concurrency: plan.concurrency,
        sent: sent.attempted,
        accepted: sent.accepted.len(),
        rejected: sent.rejected.clone(),
        completed,
        profile_missing: sent.accepted.len() - phase.profile.at.len().min(sent.accepted.len()),
        mail_missing: sent.accepted.len() - phase.mail.at.len().min(sent.accepted.len()),
        timed_out: phase.timed_out,
        post_seconds,
        post_per_second: per_second(sent.accepted.len(), post_seconds),
        end_to_end_seconds,
        end_to_end_per_second: per_second(completed, end_to_end_seconds),
        schedule_lag_max_ms: sent.max_lag.as_secs_f64() * 1000.0,
        post: Latency::of(&sent.post),
        profile: Latency::of(&latencies(&phase.profile)),
        mail: Latency::of(&latencies(&phase.mail)),
        estimated_timestamps: phase.profile.estimated + phase.mail.estimated,
        generator: GeneratorCost {
            cpu_ms: cpu.as_secs_f64() * 1000.0,
            http_requests,
            cpu_us_per_signup: cpu_us / sent.attempted.max(1) as f64,
            cpu_us_per_request: cpu_us / http_requests.max(1) as f64,
        },
        warmup,
    }
}
