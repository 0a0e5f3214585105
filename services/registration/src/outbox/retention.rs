//! Expiry of the event log: the outbox keeps every event after it was published (for
//! `registration replay`) until the retention period has passed, then this deletes it.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Rows deleted per statement by the retention cleanup: small enough that each delete
/// holds its row locks only briefly and never blocks the relay or sign-ups for long.
const PURGE_BATCH: i64 = 1_000;

/// Deletes published events older than `retention`, in batches, until none are left.
/// Unpublished rows are never deleted, however old: they have not been delivered yet.
pub async fn purge_expired(db: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let cutoff =
        Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let mut purged = 0;
    loop {
        // SKIP LOCKED: rows the relay (or another instance's cleanup) holds are left for
        // the next round instead of waited for.
        let deleted = sqlx::query(
            "delete from outbox where position in (
                 select position from outbox
                 where published_at is not null and published_at < $1
                 order by position limit $2
                 for update skip locked)",
        )
        .bind(cutoff)
        .bind(PURGE_BATCH)
        .execute(db)
        .await?
        .rows_affected();
        purged += deleted;
        if deleted < u64::try_from(PURGE_BATCH).unwrap_or(u64::MAX) {
            return Ok(purged);
        }
    }
}

/// Runs [`purge_expired`] every `interval` until `shutdown`: its own task on a timer, so
/// the cleanup never lengthens a sign-up or a relay batch. Failures are logged and tried
/// again at the next tick.
pub async fn run_retention(
    db: PgPool,
    retention: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match purge_expired(&db, retention).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged expired events from the event log"),
            Err(error) => tracing::warn!(error = %error, "event log cleanup failed; will retry"),
        }
    }
}
