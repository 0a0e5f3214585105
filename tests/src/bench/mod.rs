//! The benchmark: how fast the system is, against what this machine allows.
//!
//! [`run`] does, in one go:
//!
//! 1. **Raw limits** of the local servers for this flow's shape, with the client
//!    libraries the services use (`amqp`, `postgres`, `smtp`): confirmed publishes fanned
//!    out to two quorum queues and consumed with manual acks; two-insert transactions;
//!    mails into the project's SMTP sink.
//! 2. **The services** (`phases`, `deployment`): the three release binaries as users run
//!    them (trace export on, to the `otlp-sink` tool; mail to the `smtp-sink` tool), driven
//!    by the load generator at saturation, at half that rate and at a fixed rate, with each
//!    process's CPU time and resident memory (`usage`), and in each phase what a sign-up
//!    cost the broker and the database (`footprint`: the capacity model's inputs).
//! 3. **The table** (`table`) and one JSON line.
//!
//! # The limit
//!
//! Each sign-up costs three database transactions (registration's user + outbox,
//! email's inbox + pending mail, profile's inbox + profile), one confirmed publish that
//! the broker delivers to two queues, and one SMTP transaction. On a 2-core machine the
//! broker, the database, the sink and the services share the same cores, so at saturation
//! each of these costs takes its share of the same CPU time and they add up:
//!
//! ```text
//! limit ≈ 1 / (3 / pg_tps + 1 / amqp_msgs_per_s + 1 / smtp_mails_per_s)
//! ```
//!
//! with each term the best rate measured in step 1. It is optimistic: the relay's
//! "published" mark, the email service's "sent" mark, the HTTP requests and the
//! services' own work come on top.
//!
//! That is the limit of a system that commits each sign-up on its own. The services
//! commit the work in flight together (docs/decisions/0010, 0011), so under load a
//! sign-up costs each of them a share of a transaction: the bench also measures the same
//! rows written 64 sign-ups per transaction, and compares the services with the limit
//! that gives (`pg` in sign-ups/s written in batches). It is the fairer yardstick, and
//! still optimistic in the same ways.

mod amqp;
mod deployment;
mod footprint;
mod phases;
mod postgres;
mod smtp;
mod table;
mod usage;

use std::time::Duration;

use serde::Serialize;

pub use self::{
    amqp::AmqpRate,
    footprint::{DatabaseCost, Footprint},
    phases::{Phase, ServicesResult},
    postgres::{PgRate, PgShape},
    smtp::SmtpRate,
    table::render,
    usage::ProcessUsage,
};

/// Sign-ups per transaction in the batched PostgreSQL measurement: the consumers' default
/// prefetch, the largest group commit they make.
const BATCH: usize = 64;

/// What the benchmark runs, and how much of it.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchPlan {
    /// Measure the raw limits (step 1).
    pub raw: bool,
    /// Publisher concurrencies (messages awaiting confirms) for RabbitMQ.
    pub amqp_levels: Vec<usize>,
    /// Messages per RabbitMQ level at most.
    pub amqp_messages: usize,
    /// Clients and sign-ups per transaction for PostgreSQL.
    pub pg_shapes: Vec<PgShape>,
    /// How long each PostgreSQL shape runs.
    pub pg_duration: Duration,
    /// Mails each way into the SMTP sink at most.
    pub smtp_mails: usize,
    /// The longest any one raw measurement publishes or sends.
    pub raw_time_limit: Duration,
    /// Run the services (step 2).
    pub services: bool,
    /// Measured sign-ups at saturation.
    pub count: usize,
    /// Sign-ups before measuring.
    pub warmup: usize,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// How long each fixed-rate phase offers load.
    pub phase_duration: Duration,
    /// The rates of the last phases, sign-ups/s: the issue's two targets, a rate near
    /// the machine's limit and a moderate one.
    pub fixed_rates: Vec<f64>,
    /// How long a phase waits for completion after its last POST.
    pub complete_timeout: Duration,
    /// Progress bars on stderr.
    pub progress: bool,
    /// Run the service binaries in this folder instead of building the workspace's: the
    /// way to compare two builds (say, before and after a change) with the same tools.
    pub service_binaries: Option<std::path::PathBuf>,
    /// Instances of each service, sharing their database and queues: what scaling out
    /// costs on this machine.
    pub instances: usize,
}

impl BenchPlan {
    /// The full benchmark: about four minutes on the 2-core machine.
    pub fn full() -> Self {
        Self {
            raw: true,
            amqp_levels: vec![1, 8, 32, 128],
            amqp_messages: 10_000,
            pg_shapes: [(1, 1), (8, 1), (32, 1), (1, BATCH), (3, BATCH)]
                .into_iter()
                .map(|(clients, batch)| PgShape { clients, batch })
                .collect(),
            pg_duration: Duration::from_secs(3),
            smtp_mails: 3_000,
            raw_time_limit: Duration::from_secs(20),
            services: true,
            count: 20_000,
            warmup: 1_000,
            concurrency: 64,
            phase_duration: Duration::from_secs(10),
            fixed_rates: vec![1_000.0, 200.0],
            complete_timeout: Duration::from_secs(60),
            progress: true,
            service_binaries: None,
            instances: 1,
        }
    }

    /// Small counts, to check that everything works (figures are not meaningful).
    pub fn quick() -> Self {
        Self {
            amqp_messages: 1_000,
            pg_duration: Duration::from_millis(500),
            smtp_mails: 300,
            raw_time_limit: Duration::from_secs(5),
            count: 300,
            warmup: 100,
            phase_duration: Duration::from_secs(2),
            complete_timeout: Duration::from_secs(30),
            ..Self::full()
        }
    }
}

/// Step 1's figures and the limit derived from them.
#[derive(Debug, Clone, Serialize)]
pub struct RawLimits {
    /// RabbitMQ, per publisher concurrency.
    pub amqp: Vec<AmqpRate>,
    /// PostgreSQL, per shape.
    pub postgres: Vec<PgRate>,
    /// The SMTP sink.
    pub smtp: SmtpRate,
    /// The best of each, as used in the limit.
    pub best_amqp_per_second: f64,
    /// Best two-insert transactions/s, one sign-up each.
    pub best_pg_per_second: f64,
    /// Best sign-ups/s written in batches.
    pub best_pg_batched_per_second: f64,
    /// Best mails/s.
    pub best_smtp_per_second: f64,
    /// Sign-ups/s with one transaction per sign-up and service:
    /// `1 / (3/pg + 1/amqp + 1/smtp)`.
    pub limit: f64,
    /// The same with the database's term from batched writing, as the services' group
    /// commits write: what the services are compared with.
    pub batched_limit: f64,
}

/// Everything the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Step 1, if run.
    pub raw: Option<RawLimits>,
    /// Step 2, if run.
    pub services: Option<ServicesResult>,
}

impl BenchReport {
    /// One line of JSON, `{"bench":{…}}`.
    pub fn summary_line(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            bench: &'a BenchReport,
        }
        serde_json::to_string(&Line { bench: self }).unwrap_or_default()
    }
}

/// Runs `plan`.
pub async fn run(plan: &BenchPlan) -> anyhow::Result<BenchReport> {
    let raw = if plan.raw {
        Some(raw_limits(plan).await?)
    } else {
        None
    };
    let services = if plan.services {
        let limit = raw.as_ref().map(|raw| raw.batched_limit);
        Some(phases::run(plan, limit).await?)
    } else {
        None
    };
    Ok(BenchReport { raw, services })
}

async fn raw_limits(plan: &BenchPlan) -> anyhow::Result<RawLimits> {
    eprintln!(
        "RabbitMQ: confirmed publishes to 2 quorum queues, {:?} in flight…",
        plan.amqp_levels
    );
    let amqp = amqp::measure(&plan.amqp_levels, plan.amqp_messages, plan.raw_time_limit).await?;
    eprintln!("PostgreSQL: two-insert transactions, one sign-up and {BATCH} per transaction…");
    let postgres = postgres::measure(&plan.pg_shapes, plan.pg_duration).await?;
    eprintln!("SMTP sink: {} mails each way…", plan.smtp_mails);
    let smtp = smtp::measure(plan.smtp_mails, plan.raw_time_limit).await?;
    let best_amqp = amqp.iter().map(|rate| rate.per_second).fold(0.0, f64::max);
    let best_pg = postgres
        .iter()
        .filter(|rate| rate.batch == 1)
        .map(|rate| rate.per_second)
        .fold(0.0, f64::max);
    let best_pg_batched = postgres
        .iter()
        .map(|rate| rate.sign_ups_per_second)
        .fold(0.0, f64::max);
    let best_smtp = smtp.best();
    Ok(RawLimits {
        limit: limit(best_pg, best_amqp, best_smtp),
        batched_limit: limit(best_pg_batched, best_amqp, best_smtp),
        amqp,
        postgres,
        smtp,
        best_amqp_per_second: best_amqp,
        best_pg_per_second: best_pg,
        best_pg_batched_per_second: best_pg_batched,
        best_smtp_per_second: best_smtp,
    })
}

/// `1 / (3/pg + 1/amqp + 1/smtp)`; zero if any rate is zero.
pub fn limit(pg: f64, amqp: f64, smtp: f64) -> f64 {
    if pg <= 0.0 || amqp <= 0.0 || smtp <= 0.0 {
        return 0.0;
    }
    1.0 / (3.0 / pg + 1.0 / amqp + 1.0 / smtp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The issue's orientation figures: 8 000 tx/s and 13 000 msg/s give about 2 200
    /// sign-ups/s before SMTP.
    #[test]
    fn the_limit_adds_the_costs() {
        let without_smtp = limit(8_000.0, 13_000.0, f64::INFINITY);
        assert!((without_smtp - 2_213.0).abs() < 5.0, "{without_smtp}");
        assert!(limit(8_000.0, 13_000.0, 1_000.0) < 700.0);
        assert!(limit(0.0, 1.0, 1.0).abs() < f64::EPSILON);
    }
}
