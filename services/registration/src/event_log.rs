//! The outbox as the event log: every event registration has emitted, kept after it was
//! published (for `registration replay`) until the retention period has passed.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use messaging::{lapin::types::FieldTable, publisher::OutgoingMessage};
use opentelemetry::global;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The CloudEvents `source` of every event this service emits.
pub const SOURCE: &str = "/registration";

/// Rows deleted per statement by the retention cleanup: small enough that each delete
/// holds its row locks only briefly and never blocks the relay or sign-ups for long.
const PURGE_BATCH: i64 = 1_000;

/// One outbox row, ready to be published (again).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct LoggedEvent {
    /// Publication order.
    pub(crate) position: i64,
    pub(crate) event_id: Uuid,
    pub(crate) event_type: String,
    pub(crate) aggregate_id: Uuid,
    /// The envelope as JSON text.
    pub(crate) payload: String,
    pub(crate) traceparent: Option<String>,
    pub(crate) tracestate: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
}

impl LoggedEvent {
    /// The AMQP message for this event: same id, type and body every time it is sent.
    pub(crate) fn message(&self, headers: FieldTable) -> OutgoingMessage {
        OutgoingMessage {
            message_id: self.event_id.to_string(),
            event_type: self.event_type.clone(),
            correlation_id: self.aggregate_id.to_string(),
            source: SOURCE.to_owned(),
            timestamp: u64::try_from(self.created_at.timestamp()).unwrap_or_default(),
            headers,
            body: self.payload.clone().into_bytes(),
        }
    }

    /// The trace context the sign-up request stored with the row.
    pub(crate) fn trace_context(&self) -> opentelemetry::Context {
        let mut carrier = HashMap::new();
        if let Some(traceparent) = &self.traceparent {
            carrier.insert("traceparent".to_owned(), traceparent.clone());
        }
        if let Some(tracestate) = &self.tracestate {
            carrier.insert("tracestate".to_owned(), tracestate.clone());
        }
        global::get_text_map_propagator(|propagator| propagator.extract(&carrier))
    }
}

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

/// Runs [`purge_expired`] every `interval` until `shutdown`.
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
