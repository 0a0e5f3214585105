//! What one sign-up costs the servers the services share: the inputs of a capacity
//! model (`docs/scaling.md`), measured around the saturation phase.
//!
//! - **PostgreSQL**: write transactions (transaction ids handed out, which only a
//!   transaction that writes gets), commits per service database (`pg_stat_database`,
//!   reads included), WAL bytes and WAL syncs (each sync is a disk flush: the IOPS a
//!   server must sustain), database growth, and the CPU time of all PostgreSQL processes.
//! - **RabbitMQ**: publishes and deliveries, counted by the services themselves (the
//!   broker's management API is not enabled on every machine), and the broker's CPU.
//!
//! Two readings, before and after; the difference over the sign-ups completed. Only the
//! benchmark's services use the servers meanwhile, and the generator reads the effects
//! back only after the second reading, so nothing else is counted. PostgreSQL's
//! cumulative statistics are not live: a backend reports its counters when it goes idle,
//! at most [`STATISTICS_DELAY`] later, so each reading waits that long after the load.
//! Transaction ids, WAL positions and sizes are live.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::{defaults, procfs, system::Service};

/// How long PostgreSQL 15 may hold an idle backend's statistics before reporting them
/// (`PGSTAT_IDLE_INTERVAL`, 10 s), plus a second.
pub(super) const STATISTICS_DELAY: Duration = Duration::from_secs(11);

/// The process names (`/proc/<pid>/comm`) of the two servers.
const RABBITMQ_PROCESS: &str = "beam.smp";
const POSTGRES_PROCESS: &str = "postgres";

/// One service's own database, per sign-up.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseCost {
    /// `registration`, `email` or `profile`.
    pub service: String,
    /// Committed transactions, reads included (`pg_stat_database.xact_commit`).
    pub commits: f64,
    /// Growth of the database, bytes (`pg_database_size`, pages allocated).
    pub growth_bytes: f64,
}

/// What one completed sign-up cost the shared servers, on average over a phase.
#[derive(Debug, Clone, Serialize)]
pub struct Footprint {
    /// Sign-ups completed in the phase measured.
    pub sign_ups: usize,
    /// Write transactions, all three databases together.
    pub write_transactions: f64,
    /// Per service database.
    pub databases: Vec<DatabaseCost>,
    /// Write-ahead log written, bytes.
    pub wal_bytes: f64,
    /// WAL flushes to disk (`pg_stat_wal.wal_sync`).
    pub wal_syncs: f64,
    /// CPU time of all PostgreSQL processes, ms.
    pub postgres_cpu_ms: f64,
    /// Events published (registration's `events_published_total`).
    pub broker_publishes: f64,
    /// Deliveries handled (email's and profile's `events_consumed_total`).
    pub broker_deliveries: f64,
    /// CPU time of the RabbitMQ node, ms.
    pub rabbitmq_cpu_ms: f64,
}

/// The counters at one moment.
#[derive(Debug, Clone)]
pub(super) struct Reading {
    next_transaction_id: i64,
    commits: Vec<i64>,
    sizes: Vec<i64>,
    wal_position: i64,
    wal_syncs: i64,
    postgres_cpu: Duration,
    published: f64,
    consumed: f64,
    rabbitmq_cpu: Duration,
}

/// Where the counters are: the services' databases and base URLs.
#[derive(Debug, Clone)]
pub(super) struct Counters {
    /// Each service with its database's name, in [`Service::ALL`] order.
    pub(super) databases: Vec<(Service, String)>,
    /// Each service's base URL, for `/metrics`.
    pub(super) urls: Vec<(Service, String)>,
}

impl Counters {
    /// Reads every counter now.
    pub(super) async fn read(&self) -> anyhow::Result<Reading> {
        let mut db = PgConnection::connect(&format!("{}/postgres", defaults::POSTGRES_BASE))
            .await
            .context("connecting to PostgreSQL for its statistics")?;
        let (next_transaction_id, wal_position, wal_syncs): (i64, i64, i64) = sqlx::query_as(
            "select pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,
                    (select wal_sync from pg_stat_wal)",
        )
        .fetch_one(&mut db)
        .await?;
        let mut commits = Vec::new();
        let mut sizes = Vec::new();
        for (_, name) in &self.databases {
            let (commit, size): (i64, i64) = sqlx::query_as(
                "select xact_commit, pg_database_size(datname) from pg_stat_database
                  where datname = $1",
            )
            .bind(name)
            .fetch_one(&mut db)
            .await
            .with_context(|| format!("the statistics of database {name}"))?;
            commits.push(commit);
            sizes.push(size);
        }
        db.close().await?;
        let mut published = 0.0;
        let mut consumed = 0.0;
        for (service, url) in &self.urls {
            let metrics = reqwest::get(format!("{url}/metrics")).await?.text().await?;
            match service {
                Service::Registration => published += sum(&metrics, "events_published_total"),
                Service::Email | Service::Profile => {
                    consumed += sum(&metrics, "events_consumed_total");
                }
            }
        }
        Ok(Reading {
            next_transaction_id,
            commits,
            sizes,
            wal_position,
            wal_syncs,
            postgres_cpu: procfs::cpu_time_of_all(POSTGRES_PROCESS),
            published,
            consumed,
            rabbitmq_cpu: procfs::cpu_time_of_all(RABBITMQ_PROCESS),
        })
    }

    /// What happened between `before` and `after`, per sign-up of `sign_ups`.
    pub(super) fn footprint(
        &self,
        before: &Reading,
        after: &Reading,
        sign_ups: usize,
    ) -> Footprint {
        let per = |count: f64| count / sign_ups.max(1) as f64;
        let delta = |before: i64, after: i64| per((after - before) as f64);
        let cpu = |before: Duration, after: Duration| {
            per(after.saturating_sub(before).as_secs_f64() * 1000.0)
        };
        Footprint {
            sign_ups,
            write_transactions: delta(before.next_transaction_id, after.next_transaction_id),
            databases: self
                .databases
                .iter()
                .enumerate()
                .map(|(index, (service, _))| DatabaseCost {
                    service: service.name().to_owned(),
                    commits: delta(before.commits[index], after.commits[index]),
                    growth_bytes: delta(before.sizes[index], after.sizes[index]),
                })
                .collect(),
            wal_bytes: delta(before.wal_position, after.wal_position),
            wal_syncs: delta(before.wal_syncs, after.wal_syncs),
            postgres_cpu_ms: cpu(before.postgres_cpu, after.postgres_cpu),
            broker_publishes: per(after.published - before.published),
            broker_deliveries: per(after.consumed - before.consumed),
            rabbitmq_cpu_ms: cpu(before.rabbitmq_cpu, after.rabbitmq_cpu),
        }
    }
}

/// The sum of every series of the metric `name` in a Prometheus text exposition.
fn sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every labelled series of the metric counts, and no other metric that starts with
    /// its name.
    #[test]
    fn sums_the_series_of_one_metric() {
        let metrics = "# TYPE events_consumed_total counter\n\
            events_consumed_total{queue=\"a\",outcome=\"done\"} 3\n\
            events_consumed_total{queue=\"b\",outcome=\"done\"} 4.5\n\
            events_consumed_total_other 100\n\
            events_consumed 7\n";
        assert!((sum(metrics, "events_consumed_total") - 7.5).abs() < f64::EPSILON);
        assert!(sum(metrics, "missing").abs() < f64::EPSILON);
    }
}
