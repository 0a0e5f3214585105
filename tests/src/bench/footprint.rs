//! What one sign-up costs the servers the services share: the inputs of a capacity
//! model (`docs/scaling.md`), measured around each load phase.
//!
//! - **PostgreSQL**, from its write-ahead log: every change and every commit is a WAL
//!   record, and each record names its transaction, each transaction one database. So
//!   reading the WAL written during the phase (`pg_walinspect`, shipped with PostgreSQL
//!   15) gives each service database's write transactions and WAL bytes exactly, with
//!   nothing else on the server counted and without waiting for the cumulative
//!   statistics (which a backend reports up to 10 s late). A temporary replication slot
//!   keeps that WAL until it is read. Plus each database's growth and the CPU time of
//!   all PostgreSQL processes.
//! - **RabbitMQ**: publishes and deliveries, counted by the services themselves (the
//!   broker's management API is not enabled on every machine), and the broker's CPU.
//!
//! Two readings, before and after; the differences over the sign-ups accepted. The
//! generator reads the effects back only after the second reading. The CPU times are
//! the whole servers': other work on the machine at the same time would be counted.

use anyhow::Context;
use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::{defaults, load::sum_of, procfs, system::Service};

/// The process names (`/proc/<pid>/comm`) of the two servers.
const RABBITMQ_PROCESS: &str = "beam.smp";
const POSTGRES_PROCESS: &str = "postgres";

/// Each database's write transactions and WAL bytes between two WAL positions: a
/// record's database is the one its block references name, or its transaction's.
const WAL_BY_DATABASE: &str = r#"
    with records as (
        select xid, resource_manager, record_type, record_length,
               substring(block_ref from 'rel \d+/(\d+)/')::oid as database
          from pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)),
    transactions as (
        select distinct xid, database from records
         where xid <> '0' and database is not null)
    select d.datname,
           count(*) filter (where r.resource_manager = 'Transaction'
                              and r.record_type like 'COMMIT%'),
           sum(r.record_length)::bigint
      from records r
      left join transactions t on t.xid = r.xid
      join pg_database d on d.oid = coalesce(r.database, t.database)
     where d.datname = any($3)
     group by d.datname"#;

/// One service's own database, per sign-up.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseCost {
    /// `registration`, `email` or `profile`.
    pub service: String,
    /// Transactions that wrote and committed (read-only ones write no WAL and cost no
    /// disk flush).
    pub commits: f64,
    /// Write-ahead log written for it, bytes (full-page images included).
    pub wal_bytes: f64,
    /// Growth of the database, bytes (`pg_database_size`, pages allocated).
    pub growth_bytes: f64,
}

/// What one accepted sign-up cost the shared servers, on average over a phase.
#[derive(Debug, Clone, Serialize)]
pub struct Footprint {
    /// Sign-ups accepted in the phase measured.
    pub sign_ups: usize,
    /// Per service database.
    pub databases: Vec<DatabaseCost>,
    /// CPU time of all PostgreSQL processes, ms.
    pub postgres_cpu_ms: f64,
    /// Events published (registration's `events_published_total`).
    pub broker_publishes: f64,
    /// Deliveries handled (email's and profile's `events_consumed_total`).
    pub broker_deliveries: f64,
    /// CPU time of the RabbitMQ node, ms.
    pub rabbitmq_cpu_ms: f64,
}

impl Footprint {
    /// Write transactions, all service databases together.
    pub fn commits(&self) -> f64 {
        self.databases.iter().map(|database| database.commits).sum()
    }

    /// WAL bytes, all service databases together.
    pub fn wal_bytes(&self) -> f64 {
        self.databases
            .iter()
            .map(|database| database.wal_bytes)
            .sum()
    }
}

/// Where the counters are: the services' databases and base URLs.
#[derive(Debug, Clone)]
pub(super) struct Counters {
    /// Each service with its database's name, in [`Service::ALL`] order.
    pub(super) databases: Vec<(Service, String)>,
    /// Each service's base URL, for `/metrics`.
    pub(super) urls: Vec<(Service, String)>,
}

/// A measurement in progress: the first reading, and the connection that holds the
/// replication slot keeping the WAL written since.
#[derive(Debug)]
pub(super) struct Measuring {
    counters: Counters,
    /// Connected to a database of the measurement's own, where `pg_walinspect` is
    /// installed; its temporary slot goes when it closes.
    wal: PgConnection,
    /// That database's name, dropped at the end.
    wal_database: String,
    before: Reading,
}

/// The counters that are read twice.
#[derive(Debug, Clone)]
struct Reading {
    wal_position: String,
    sizes: Vec<i64>,
    postgres_cpu: std::time::Duration,
    published: f64,
    consumed: f64,
    rabbitmq_cpu: std::time::Duration,
}

impl Counters {
    /// Reserves the WAL from now on and takes the first reading.
    pub(super) async fn start(&self) -> anyhow::Result<Measuring> {
        let wal_database = format!(
            "bench_wal_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        administer(format!("create database {wal_database}")).await?;
        match self.reserve(&wal_database).await {
            Ok((wal, before)) => Ok(Measuring {
                counters: self.clone(),
                wal,
                wal_database,
                before,
            }),
            Err(error) => {
                drop_database(&wal_database).await?;
                Err(error)
            }
        }
    }

    /// Connects to the measurement's database, installs `pg_walinspect` there, holds
    /// the WAL with a temporary slot and takes the first reading.
    async fn reserve(&self, wal_database: &str) -> anyhow::Result<(PgConnection, Reading)> {
        let mut wal =
            PgConnection::connect(&format!("{}/{wal_database}", defaults::POSTGRES_BASE)).await?;
        sqlx::query("create extension pg_walinspect")
            .execute(&mut wal)
            .await
            .context("installing pg_walinspect (PostgreSQL 15's contrib)")?;
        sqlx::query("select pg_create_physical_replication_slot($1, true, true)")
            .bind(wal_database)
            .execute(&mut wal)
            .await
            .context("a temporary replication slot keeping the phase's WAL")?;
        let before = self.read(&mut wal).await?;
        Ok((wal, before))
    }

    async fn read(&self, db: &mut PgConnection) -> anyhow::Result<Reading> {
        let wal_position: String = sqlx::query_scalar("select pg_current_wal_lsn()::text")
            .fetch_one(&mut *db)
            .await?;
        let mut sizes = Vec::new();
        for (_, name) in &self.databases {
            let size: i64 = sqlx::query_scalar("select pg_database_size($1::text)")
                .bind(name)
                .fetch_one(&mut *db)
                .await
                .with_context(|| format!("the size of database {name}"))?;
            sizes.push(size);
        }
        let mut published = 0.0;
        let mut consumed = 0.0;
        for (service, url) in &self.urls {
            let metrics = reqwest::get(format!("{url}/metrics")).await?.text().await?;
            match service {
                Service::Registration => {
                    published += sum_of(&metrics, "events_published_total").unwrap_or(0.0);
                }
                Service::Email | Service::Profile => {
                    consumed += sum_of(&metrics, "events_consumed_total").unwrap_or(0.0);
                }
            }
        }
        Ok(Reading {
            wal_position,
            sizes,
            postgres_cpu: procfs::cpu_time_of_all(POSTGRES_PROCESS),
            published,
            consumed,
            rabbitmq_cpu: procfs::cpu_time_of_all(RABBITMQ_PROCESS),
        })
    }
}

impl Measuring {
    /// Takes the second reading, reads the WAL in between, removes what the measurement
    /// created, and returns the costs per sign-up of `sign_ups`.
    pub(super) async fn finish(self, sign_ups: usize) -> anyhow::Result<Footprint> {
        let Self {
            counters,
            mut wal,
            wal_database,
            before,
        } = self;
        let read = read_after(&counters, &before, &mut wal).await;
        // Whatever the reading gave, the slot (with the connection) and the database go.
        let closed = wal.close().await;
        drop_database(&wal_database).await?;
        closed?;
        let (after, by_database) = read?;

        let per = |count: f64| count / sign_ups.max(1) as f64;
        let cpu = |before: std::time::Duration, after: std::time::Duration| {
            per(after.saturating_sub(before).as_secs_f64() * 1000.0)
        };
        let databases = counters
            .databases
            .iter()
            .enumerate()
            .map(|(index, (service, name))| {
                let (commits, wal_bytes) = by_database
                    .iter()
                    .find(|(database, _, _)| database == name)
                    .map_or((0, 0), |(_, commits, bytes)| (*commits, *bytes));
                DatabaseCost {
                    service: service.name().to_owned(),
                    commits: per(commits as f64),
                    wal_bytes: per(wal_bytes as f64),
                    growth_bytes: per((after.sizes[index] - before.sizes[index]) as f64),
                }
            })
            .collect();
        Ok(Footprint {
            sign_ups,
            databases,
            postgres_cpu_ms: cpu(before.postgres_cpu, after.postgres_cpu),
            broker_publishes: per(after.published - before.published),
            broker_deliveries: per(after.consumed - before.consumed),
            rabbitmq_cpu_ms: cpu(before.rabbitmq_cpu, after.rabbitmq_cpu),
        })
    }
}

/// The second reading, and each service database's commits and WAL bytes between the
/// two.
async fn read_after(
    counters: &Counters,
    before: &Reading,
    wal: &mut PgConnection,
) -> anyhow::Result<(Reading, Vec<(String, i64, i64)>)> {
    let after = counters.read(wal).await?;
    let names: Vec<String> = counters
        .databases
        .iter()
        .map(|(_, name)| name.clone())
        .collect();
    let by_database = sqlx::query_as(WAL_BY_DATABASE)
        .bind(&before.wal_position)
        .bind(&after.wal_position)
        .bind(&names)
        .fetch_all(wal)
        .await
        .context("reading the phase's WAL")?;
    Ok((after, by_database))
}

/// Drops the measurement's own database.
async fn drop_database(name: &str) -> anyhow::Result<()> {
    administer(format!("drop database if exists {name}")).await
}

/// Runs `statement` (creating or dropping the measurement's database, whose name is its
/// own, made of hex digits) on the server's `postgres` database.
async fn administer(statement: String) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&format!("{}/postgres", defaults::POSTGRES_BASE))
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(())
}
