//! Retention: tables that grow with traffic (the event log, the inbox, the idempotency
//! keys) are cut back on a timer, in small batches, so that they stop growing without a
//! cleanup ever holding locks long enough to slow the work it runs beside.

use std::time::Duration;

use chrono::Utc;
use sqlx::{AssertSqlSafe, PgPool};
use tokio_util::sync::CancellationToken;

/// Rows deleted per statement: small enough that each delete holds its row locks only
/// briefly and never blocks the service's own writes for long.
const PURGE_BATCH: i64 = 1_000;

/// One table's retention.
#[derive(Debug, Clone)]
pub struct Retention {
    /// What is purged, for the log line, e.g. `event log`.
    pub what: &'static str,
    /// A statement that deletes at most `$2` rows older than `$1` (a `timestamptz`),
    /// choosing them with `for update skip locked` so that rows in use are left for the
    /// next round instead of waited for. A literal of the service's own, never data.
    pub statement: &'static str,
    /// How long a row is kept.
    pub keep_for: Duration,
}

impl Retention {
    /// Deletes the rows older than [`Retention::keep_for`], in batches, until none are
    /// left. Returns how many.
    pub async fn purge(&self, db: &PgPool) -> Result<u64, sqlx::Error> {
        let keep_for = chrono::Duration::from_std(self.keep_for).unwrap_or(chrono::Duration::MAX);
        let cutoff = Utc::now()
            .checked_sub_signed(keep_for)
            .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        let batch = u64::try_from(PURGE_BATCH).unwrap_or(u64::MAX);
        let mut purged = 0;
        loop {
            let deleted = sqlx::query(AssertSqlSafe(self.statement))
                .bind(cutoff)
                .bind(PURGE_BATCH)
                .execute(db)
                .await?
                .rows_affected();
            purged += deleted;
            if deleted < batch {
                return Ok(purged);
            }
        }
    }
}

/// Runs every retention's purge every `interval` until `shutdown`: a task of its own on a
/// timer, so a cleanup never lengthens a request or a batch. Failures are logged and
/// tried again at the next tick.
pub async fn run(
    db: PgPool,
    retentions: Vec<Retention>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for retention in &retentions {
            match retention.purge(&db).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, what = retention.what, "purged expired rows"),
                Err(error) => {
                    tracing::warn!(error = %error, what = retention.what, "cleanup failed; will retry");
                }
            }
        }
    }
}
