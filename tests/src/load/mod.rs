//! The load generator: drives running services like real clients and measures how fast
//! sign-ups go through, end to end.
//!
//! [`run`] sends the sign-ups of a [`Plan`] (`POST /users`, unique addresses, at a fixed
//! rate or as fast as `concurrency` allows), meanwhile follows every accepted one until
//! its profile is visible and its welcome mail is `sent` (through the services' public
//! HTTP APIs only), and returns a [`Report`]: counts, rates and HDR latency percentiles.
//! The `load` binary is this with a command line; the benchmark and the smoke test call
//! it as a library.
//!
//! - `plan`: what to send, when each sign-up is due;
//! - `send`: the POSTs (open or closed loop);
//! - `track`: waiting for the profile and the mail, cheaply;
//! - `report`: the figures, for people and as one JSON line;
//! - `progress`: the bars.

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
use tokio::sync::{mpsc, watch};

pub use self::{
    plan::{DEFAULT_COMPLETE_TIMEOUT, DEFAULT_CONCURRENCY, DEFAULT_COUNT, Plan, Targets},
    report::{GeneratorCost, Latency, Report, Warmup},
};
use self::{
    progress::Bars,
    report::{histogram, per_second, record, seconds},
    send::{Outlets, Sent},
    track::{Board, Effect, Tracked, Tracker},
};
use crate::procfs::{self, Pid};

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `plan`: the warm-up if any, then the measured sign-ups; returns what the
/// measured ones did. Fails only if no HTTP client can be built: unreachable services
/// show up as rejections in the report.
pub async fn run(plan: &Plan) -> anyhow::Result<Report> {
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
        let phase = phase(&http, &warm, &label, "warm-up", &bars).await;
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
    let measured = phase(&http, plan, &label, "measured", &bars).await;
    let cpu = procfs::cpu_time(Pid::Current)
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before))
        .unwrap_or_default();
    Ok(report(plan, &measured, warmup, cpu))
}

/// One phase's sending and tracking.
#[derive(Debug)]
struct Phase {
    sent: Sent,
    profile: Tracked,
    mail: Tracked,
    timed_out: bool,
}

async fn phase(http: &reqwest::Client, plan: &Plan, label: &str, name: &str, bars: &Bars) -> Phase {
    let sent_bar = bars.sending(name, plan.expected());
    let completion_bar = bars.completing(name);
    let board = Arc::new(Board::new(completion_bar.clone()));
    let (deadline_tx, deadline) = watch::channel(None);
    let mut trackers = Vec::new();
    let mut handles = Vec::new();
    for (effect, base) in [
        (Effect::Profile, &plan.targets.profile),
        (Effect::Mail, &plan.targets.email),
    ] {
        let (tx, rx) = mpsc::unbounded_channel();
        trackers.push(tx);
        let tracker = Tracker {
            http: http.clone(),
            effect,
            base: base.clone(),
            board: board.clone(),
        };
        handles.push(tokio::spawn(tracker.run(rx, deadline.clone())));
    }
    let outlets = Outlets {
        trackers,
        sent_bar: sent_bar.clone(),
        completion_bar: completion_bar.clone(),
    };
    let sent = send::send(http, plan, label, outlets).await;
    sent_bar.finish();
    let _ = deadline_tx.send(Some(tokio::time::Instant::now() + plan.complete_timeout));
    let mut tracked = Vec::new();
    for handle in handles {
        tracked.push(handle.await.unwrap_or_default());
    }
    completion_bar.finish();
    let mail = tracked.pop().unwrap_or_default();
    let profile = tracked.pop().unwrap_or_default();
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
