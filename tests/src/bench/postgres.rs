//! PostgreSQL's limit for this flow's shape, with sqlx as the services use it: a
//! transaction of two inserts (a row and its outbox or inbox companion), committed with
//! the server's default durability, by 1, 8 and 32 clients at once, each on its own
//! pooled connection. In a database of its own, dropped afterwards.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool, postgres::PgPoolOptions};
use tokio::time::Instant;

use crate::defaults;

/// The tables: shaped like registration's `users` and `outbox`.
const SCHEMA: [&str; 2] = [
    "create table users (id uuid primary key, email text not null unique,
        display_name text not null, created_at timestamptz not null default now())",
    "create table outbox (id bigint generated always as identity primary key,
        event_id uuid not null unique, payload jsonb not null,
        created_at timestamptz not null default now(), published_at timestamptz)",
];

/// One client count's result.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PgRate {
    /// Clients running transactions at once.
    pub clients: usize,
    /// Transactions committed.
    pub transactions: usize,
    /// Committed transactions per second.
    pub per_second: f64,
}

/// Measures each of `levels` (clients) for `duration`.
pub(super) async fn measure(levels: &[usize], duration: Duration) -> anyhow::Result<Vec<PgRate>> {
    let database = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let admin_url = format!("{}/postgres", defaults::POSTGRES_BASE);
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .context("PostgreSQL on 127.0.0.1:5432")?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "create database \"{database}\""
    )))
    .execute(&mut admin)
    .await?;
    let result = measure_in(&database, levels, duration).await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "drop database if exists \"{database}\" with (force)"
    )))
    .execute(&mut admin)
    .await;
    result
}

async fn measure_in(
    database: &str,
    levels: &[usize],
    duration: Duration,
) -> anyhow::Result<Vec<PgRate>> {
    let url = format!("{}/{database}", defaults::POSTGRES_BASE);
    let most = levels.iter().copied().max().unwrap_or(1);
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(most).unwrap_or(32))
        .connect(&url)
        .await?;
    for statement in SCHEMA {
        sqlx::query(statement).execute(&pool).await?;
    }
    let mut rates = Vec::new();
    for &clients in levels {
        let committed = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (pool, committed) = (pool.clone(), committed.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    transaction(&pool).await?;
                    committed.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let transactions = committed.load(Ordering::Relaxed);
        rates.push(PgRate {
            clients,
            transactions,
            per_second: transactions as f64 / started.elapsed().as_secs_f64(),
        });
    }
    pool.close().await;
    Ok(rates)
}

/// One sign-up's worth of writing: a user and its outbox row, in one transaction.
async fn transaction(pool: &PgPool) -> anyhow::Result<()> {
    let id = uuid::Uuid::now_v7();
    let mut tx = pool.begin().await?;
    sqlx::query("insert into users (id, email, display_name) values ($1, $2, $3)")
        .bind(id)
        .bind(format!("{id}@bench.example.org"))
        .bind("Bench user")
        .execute(&mut *tx)
        .await?;
    sqlx::query("insert into outbox (event_id, payload) values ($1, $2)")
        .bind(id)
        .bind(serde_json::json!({ "id": id, "type": "user.registered.v1" }))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
