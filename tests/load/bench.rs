//! `bench`: the system's speed against this machine's own limits, in one run.
//!
//! ```text
//! cargo run --release -p system-tests --bin bench            # about four minutes
//! cargo run --release -p system-tests --bin bench -- --quick # a minute: does it all work?
//! ```
//!
//! Measures RabbitMQ, PostgreSQL and the SMTP sink with the services' client libraries,
//! derives the limit for a sign-up, then starts the three release binaries (their own
//! databases and queue prefix, trace export on) and drives them with the load generator
//! at saturation, at half that rate and at a fixed rate. Prints the tables, then one JSON
//! line `{"bench":{…}}`. Needs RabbitMQ and PostgreSQL on 127.0.0.1; removes everything
//! it creates.

use std::time::Duration;

use clap::Parser;
use system_tests::bench::{self, BenchPlan};

#[derive(Debug, Parser)]
#[command(about = "Raw broker, database and SMTP limits, then the services under load")]
struct Args {
    /// Small counts: checks that everything works; the figures mean little.
    #[arg(long)]
    quick: bool,
    /// Measured sign-ups at saturation.
    #[arg(long)]
    count: Option<usize>,
    /// Sign-ups before the first measured phase.
    #[arg(long)]
    warmup: Option<usize>,
    /// Requests in flight at most.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Seconds of load in each fixed-rate phase.
    #[arg(long)]
    phase_secs: Option<f64>,
    /// The rates of the last phases, sign-ups/s (repeat the flag, or separate with commas).
    #[arg(long, value_delimiter = ',')]
    fixed_rate: Vec<f64>,
    /// How long a phase waits for its sign-ups to complete after the last POST.
    #[arg(long)]
    complete_timeout_secs: Option<u64>,
    /// Skip the raw limits (no ratio to the limit then).
    #[arg(long)]
    skip_raw: bool,
    /// Only the raw limits.
    #[arg(long)]
    raw_only: bool,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
    /// Run the registration, email and profile binaries in this folder instead of the
    /// workspace's release build, e.g. a copy of an earlier build to compare with.
    #[arg(long)]
    service_binaries: Option<std::path::PathBuf>,
    /// Instances of each service (sharing the database and the queues; the load goes to
    /// every registration in turn).
    #[arg(long, default_value_t = 1)]
    instances: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut plan = if args.quick {
        BenchPlan::quick()
    } else {
        BenchPlan::full()
    };
    plan.raw = !args.skip_raw;
    plan.services = !args.raw_only;
    plan.count = args.count.unwrap_or(plan.count);
    plan.warmup = args.warmup.unwrap_or(plan.warmup);
    plan.concurrency = args.concurrency.unwrap_or(plan.concurrency).max(1);
    if let Some(secs) = args.phase_secs {
        plan.phase_duration = Duration::try_from_secs_f64(secs)?;
    }
    if !args.fixed_rate.is_empty() {
        plan.fixed_rates = args.fixed_rate;
    }
    if let Some(secs) = args.complete_timeout_secs {
        plan.complete_timeout = Duration::from_secs(secs);
    }
    plan.progress = !args.no_progress;
    plan.service_binaries = args.service_binaries;
    plan.instances = args.instances.max(1);
    let report = bench::run(&plan).await?;
    println!("{}", bench::render(&report));
    println!("{}", report.summary_line());
    Ok(())
}
