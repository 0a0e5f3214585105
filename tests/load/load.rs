//! `load`: drives running services with sign-ups and measures them end to end.
//!
//! ```text
//! cargo run --release -p system-tests --bin load -- --count 5000 --warmup 1000
//! cargo run --release -p system-tests --bin load -- --rate 200 --duration 30
//! ```
//!
//! Sends `POST /users` with unique addresses, as fast as `--concurrency` allows or at
//! `--rate` per second, then waits until every accepted sign-up has its profile and its
//! sent welcome mail (through the services' HTTP APIs), and prints counts, rates and
//! latency percentiles, then one JSON line `{"summary":{…}}` for scripts. Exits 2 if some
//! sign-up was rejected or did not complete within `--complete-timeout-secs`.

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use system_tests::load::{self, DEFAULT_CONCURRENCY, DEFAULT_COUNT, Plan, Targets};

#[derive(Debug, Parser)]
#[command(about = "Sign-ups against running services, measured end to end")]
struct Args {
    /// Base URL of registration; several, separated by commas, are taken in turn.
    #[arg(
        long,
        env = "REGISTRATION_URL",
        default_value = "http://localhost:8080",
        value_delimiter = ','
    )]
    registration_url: Vec<String>,
    /// Base URL of profile; with several, their counters add up.
    #[arg(
        long,
        env = "PROFILE_URL",
        default_value = "http://localhost:8082",
        value_delimiter = ','
    )]
    profile_url: Vec<String>,
    /// Base URL of email; with several, their counters add up.
    #[arg(
        long,
        env = "EMAIL_URL",
        default_value = "http://localhost:8081",
        value_delimiter = ','
    )]
    email_url: Vec<String>,
    /// Measured sign-ups [default: 1000 unless --duration is given].
    #[arg(long)]
    count: Option<usize>,
    /// Stop starting sign-ups after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Sign-ups started per second (open loop); as fast as possible if absent.
    #[arg(long)]
    rate: Option<f64>,
    /// Requests in flight at most.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// Sign-ups sent and waited for before measuring, left out of the figures.
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// How long to wait, after the last POST, for every profile and mail.
    #[arg(long, default_value_t = 120)]
    complete_timeout_secs: u64,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let duration = args
        .duration
        .map(Duration::try_from_secs_f64)
        .transpose()
        .map_err(|_| anyhow::anyhow!("--duration must be a positive number of seconds"))?;
    if args.rate.is_some_and(|rate| rate.is_nan() || rate <= 0.0) {
        anyhow::bail!("--rate must be positive");
    }
    let plan = Plan {
        targets: Targets {
            registrations: trim(args.registration_url),
            profiles: trim(args.profile_url),
            emails: trim(args.email_url),
        },
        count: args.count.or(if duration.is_none() {
            Some(DEFAULT_COUNT)
        } else {
            None
        }),
        duration,
        rate: args.rate,
        concurrency: args.concurrency.max(1),
        warmup: args.warmup,
        complete_timeout: Duration::from_secs(args.complete_timeout_secs),
        progress: !args.no_progress,
    };
    let report = load::run(&plan).await?;
    println!("{report}");
    println!("{}", report.summary_line());
    Ok(if report.all_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn trim(urls: Vec<String>) -> Vec<String> {
    urls.iter()
        .map(|url| url.trim_end_matches('/').to_owned())
        .collect()
}
