//! PostgreSQL's limit for this flow's shape, with sqlx as the services use it: a
//! transaction of two inserts (a row and its outbox or inbox companion), committed with
//! the server's default durability, by 1, 8 and 32 clients at once, each on its own
//! pooled connection; then the same rows for a batch of sign-ups per transaction (two
//! `unnest` inserts), as the services' group commits write them, by 1 and 3 clients (one
//! writer per service). In a database of its own, dropped afterwards.

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

/// How one measurement writes: clients at once, and sign-ups per transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PgShape {
    /// Clients running transactions at once.
    pub clients: usize,
    /// Sign-ups (a user and its outbox row) per transaction.
    pub batch: usize,
}

/// One shape's result.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PgRate {
    /// Clients running transactions at once.
    pub clients: usize,
    /// Sign-ups per transaction.
    pub batch: usize,
    /// Transactions committed.
    pub transactions: usize,
    /// Committed transactions per second.
    pub per_second: f64,
    /// Sign-ups' rows written per second: `per_second × batch`.
    pub sign_ups_per_second: f64,
}

/// Measures each shape for `duration`.
pub(super) async fn measure(shapes: &[PgShape], duration: Duration) -> anyhow::Result<Vec<PgRate>> {
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
    let result = measure_in(&database, shapes, duration).await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "drop database if exists \"{database}\" with (force)"
    )))
    .execute(&mut admin)
    .await;
    result
}

async fn measure_in(
    database: &str,
    shapes: &[PgShape],
    duration: Duration,
) -> anyhow::Result<Vec<PgRate>> {
    let url = format!("{}/{database}", defaults::POSTGRES_BASE);
    let most = shapes.iter().map(|shape| shape.clients).max().unwrap_or(1);
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(most).unwrap_or(32))
        .connect(&url)
        .await?;
    for statement in SCHEMA {
        sqlx::query(statement).execute(&pool).await?;
    }
    let mut rates = Vec::new();
    for &PgShape { clients, batch } in shapes {
        let committed = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (pool, committed) = (pool.clone(), committed.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    transaction(&pool, batch).await?;
                    committed.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let transactions = committed.load(Ordering::Relaxed);
        let per_second = transactions as f64 / started.elapsed().as_secs_f64();
        rates.push(PgRate {
            clients,
            batch,
            transactions,
            per_second,
            sign_ups_per_second: per_second * batch as f64,
        });
    }
    pool.close().await;
    Ok(rates)
}

/// `batch` sign-ups' worth of writing: users and their outbox rows, in one transaction.
/// A batch of one is written with plain `values`, as a service without group commit would.
async fn transaction(pool: &PgPool, batch: usize) -> anyhow::Result<()> {
    let ids: Vec<uuid::Uuid> = (0..batch).map(|_| uuid::Uuid::now_v7()).collect();
    let emails: Vec<String> = ids
        .iter()
        .map(|id| format!("{id}@bench.example.org"))
        .collect();
    let payloads: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| serde_json::json!({ "id": id, "type": "user.registered.v1" }))
        .collect();
    let mut tx = pool.begin().await?;
    if let ([id], [email], [payload]) = (&ids[..], &emails[..], &payloads[..]) {
        sqlx::query("insert into users (id, email, display_name) values ($1, $2, 'Bench user')")
            .bind(id)
            .bind(email)
            .execute(&mut *tx)
            .await?;
        sqlx::query("insert into outbox (event_id, payload) values ($1, $2)")
            .bind(id)
            .bind(payload)
            .execute(&mut *tx)
            .await?;
    } else {
        sqlx::query(
            "insert into users (id, email, display_name)
             select id, email, 'Bench user' from unnest($1::uuid[], $2::text[]) as b(id, email)",
        )
        .bind(&ids)
        .bind(&emails)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "insert into outbox (event_id, payload) select * from unnest($1::uuid[], $2::jsonb[])",
        )
        .bind(&ids)
        .bind(&payloads)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
