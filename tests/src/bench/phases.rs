//! The services under load: start the release binaries, note their idle memory, then
//! run the load generator at saturation, at half the saturation rate, and at fixed
//! rates, recording what each process used in each phase.

use std::time::Duration;

use serde::Serialize;

use super::{
    BenchPlan,
    deployment::Deployment,
    footprint::{Counters, Footprint},
    usage::{self, ProcessUsage},
};
use crate::{
    binaries,
    load::{self, Plan, Report},
};

/// A rate phase keeps up when its end-to-end rate is at least this share of the offered
/// rate and every sign-up completed in time.
const KEEPS_UP: f64 = 0.9;

/// One load phase.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// `saturation`, `half`, or `at <rate>/s`.
    pub name: String,
    /// Offered sign-ups/s; `None` for as fast as possible.
    pub offered: Option<f64>,
    /// What the load generator measured.
    pub report: Report,
    /// What each process used (services, sinks, then the generator).
    pub usage: Vec<ProcessUsage>,
    /// End-to-end sign-ups/s over the limit from the raw measurements.
    pub ratio_to_limit: Option<f64>,
    /// For a rate phase: whether the system kept up with the offered rate.
    pub kept_up: bool,
    /// What a sign-up cost the broker and the database; `None` if it could not be
    /// measured (a PostgreSQL without `pg_walinspect`, a user who may not read the WAL).
    pub footprint: Option<Footprint>,
}

impl Phase {
    /// CPU ms per completed sign-up of the processes called `name` (all instances of a
    /// service together).
    pub fn cpu_per_signup(&self, name: &str) -> Option<f64> {
        let named: Vec<f64> = self
            .usage
            .iter()
            .filter(|usage| usage.name == name)
            .map(|usage| usage.cpu_ms)
            .collect();
        if named.is_empty() {
            return None;
        }
        let done = self.report.completed.max(1);
        Some(named.iter().sum::<f64>() / done as f64)
    }
}

/// The services' part of the benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct ServicesResult {
    /// Whether the binaries were release builds (anything else is not a benchmark).
    pub release: bool,
    /// Instances of each service.
    pub instances: usize,
    /// Resident memory of each process after start, before any load, MiB.
    pub idle_rss_mib: Vec<(String, f64)>,
    /// The phases, in order.
    pub phases: Vec<Phase>,
}

/// Runs the services' part of `plan`; `limit` is the derived limit, if measured.
pub(super) async fn run(plan: &BenchPlan, limit: Option<f64>) -> anyhow::Result<ServicesResult> {
    eprintln!(
        "building the release binaries (cargo build --release --bins -p registration -p email -p profile)…"
    );
    let directory = binaries::tools_directory().await;
    let services = plan
        .service_binaries
        .clone()
        .unwrap_or_else(|| directory.clone());
    let release = binaries::is_release(&directory);
    if !release {
        eprintln!("warning: not a release build; run with `cargo run --release`");
    }
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let log_dir = directory.join("bench-logs").join(&run_id[..10]);
    let deployment = Deployment::start(&directory, &services, &log_dir, plan.instances).await?;
    eprintln!(
        "services ready (logs in {}); idle for 2 s",
        deployment.log_dir().display()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let watched = deployment.watched();
    let idle_rss_mib = usage::resident(&watched);
    let base = Plan {
        concurrency: plan.concurrency,
        complete_timeout: plan.complete_timeout,
        progress: plan.progress,
        ..Plan::new(deployment.targets())
    };
    if plan.warmup > 0 {
        eprintln!("warm-up: {} sign-ups", plan.warmup);
        load::run(&Plan {
            count: Some(plan.warmup),
            ..base.clone()
        })
        .await?;
    }
    let mut phases = Vec::new();
    let saturation = Plan {
        count: Some(plan.count),
        ..base.clone()
    };
    eprintln!(
        "saturation: {} sign-ups, {} in flight",
        plan.count, plan.concurrency
    );
    let counters = deployment.counters();
    phases.push(phase("saturation", &saturation, &watched, limit, &counters).await?);
    let half = (phases[0].report.end_to_end_per_second / 2.0).max(1.0);
    let fixed = plan
        .fixed_rates
        .iter()
        .map(|&rate| (format!("at {rate:.0}/s"), rate));
    for (name, rate) in std::iter::once(("half".to_owned(), half)).chain(fixed) {
        let count = ((rate * plan.phase_duration.as_secs_f64()).ceil() as usize).max(10);
        eprintln!("{name}: {count} sign-ups at {rate:.0}/s");
        let paced = Plan {
            count: Some(count),
            rate: Some(rate),
            ..base.clone()
        };
        phases.push(phase(&name, &paced, &watched, limit, &counters).await?);
    }
    drop(deployment);
    Ok(ServicesResult {
        release,
        instances: plan.instances.max(1),
        idle_rss_mib,
        phases,
    })
}

/// Runs one phase, measuring its [`Footprint`] with `counters`.
async fn phase(
    name: &str,
    plan: &Plan,
    watched: &[super::deployment::Watched],
    limit: Option<f64>,
    counters: &Counters,
) -> anyhow::Result<Phase> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let measuring = counters
        .start()
        .await
        .inspect_err(|error| eprintln!("{name}: not measuring the servers' cost: {error:#}"))
        .ok();
    // Usage is measured while the load runs and until the counters say it is complete;
    // reading each sign-up's timestamps afterwards is the generator's business (and
    // comes after the footprint's second reading, which it would disturb).
    let (driven, usage) = usage::during(watched, load::drive(plan)).await;
    let driven = driven?;
    let footprint = match measuring {
        Some(measuring) => measuring
            .finish(driven.accepted())
            .await
            .inspect_err(|error| eprintln!("{name}: the servers' cost not read: {error:#}"))
            .ok(),
        None => None,
    };
    let report = driven.collect().await;
    let kept_up = !report.timed_out
        && report.all_complete()
        && plan
            .rate
            .is_none_or(|rate| report.end_to_end_per_second >= KEEPS_UP * rate);
    Ok(Phase {
        name: name.to_owned(),
        offered: plan.rate,
        ratio_to_limit: limit.map(|limit| report.end_to_end_per_second / limit),
        report,
        usage,
        kept_up,
        footprint,
    })
}
