//! Writing an event to the outbox, inside the transaction that made it true.

use events::{Envelope, Event};
use sqlx::PgConnection;
use tracing::Instrument;
use uuid::Uuid;

use super::StoredTraceContext;

/// Adds `event` to the outbox in the caller's transaction, with the trace context of the
/// current span, so the relay publishes it only if the transaction commits and its publish
/// span continues the caller's trace.
///
/// The envelope's `subject` must be the aggregate's UUID (the user id). Errors are
/// `sqlx::Error` because this is one more statement of the caller's transaction: the
/// caller rolls back on any of them. A payload that cannot be encoded (it always can) is
/// reported as `sqlx::Error::Encode`.
pub async fn enqueue<T: Event>(
    tx: &mut PgConnection,
    event: &Envelope<T>,
) -> Result<(), sqlx::Error> {
    // Before the INSERT span exists: the context stored is the caller's (the request
    // span), which is what the relay's publish span should be a child of.
    let trace = StoredTraceContext::capture_current();
    let payload =
        serde_json::to_value(event).map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
    let aggregate_id =
        Uuid::parse_str(&event.subject).map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
    sqlx::query(
        "insert into outbox (event_id, event_type, aggregate_id, payload, traceparent, tracestate)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event.id)
    .bind(&event.event_type)
    .bind(aggregate_id)
    .bind(payload)
    .bind(trace.traceparent)
    .bind(trace.tracestate)
    .execute(tx)
    .instrument(service_kit::db_span!("INSERT", "outbox"))
    .await?;
    Ok(())
}
