//! The outbox relay: moves committed events from the `outbox` table to RabbitMQ.
//!
//! Each batch runs in one transaction: claim up to N unpublished rows with
//! `FOR UPDATE SKIP LOCKED` (so several relays share the work without publishing a row
//! twice at the same time), publish them all and await their publisher confirms together,
//! mark the confirmed ones published in one statement, commit. If the broker fails
//! mid-batch the confirmed rows are still marked and the rest stay for the next connection. A crash after a confirm but before the
//! commit republishes that row later: delivery is at least once, and consumers
//! deduplicate on the event id.

use std::{sync::Arc, time::Duration};

use messaging::{
    MessagingError,
    connection::{BrokerConnection, BrokerStatus, supervise},
    headers::Headers,
    publisher::{OutgoingMessage, Publisher},
    topology::Topology,
};
use service_kit::pii::{PiiError, Sealer};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{OutboxRow, PAYLOAD, SOURCE, select_rows};

/// Wakes the relay as soon as a sign-up has committed, so its event leaves at once
/// instead of at the next sweep.
///
/// An in-process signal (a tokio [`Notify`]) from the sign-up handler of this process,
/// sent after its commit; it is not PostgreSQL `LISTEN`/`NOTIFY`. Rows committed by other
/// instances, or while the broker was away, are found by the relay's periodic sweep
/// ([`Relay::sweep_interval`]). Cloning shares the signal.
#[derive(Debug, Clone, Default)]
pub struct RelayWakeUp(Arc<Notify>);

impl RelayWakeUp {
    /// Called by the sign-up handler after its commit. If the relay is busy, one wake-up
    /// is kept for when it next waits, so a signal sent mid-batch is not lost.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Resolves at the next [`RelayWakeUp::wake`] (or at once for one kept while busy).
    async fn woken(&self) {
        self.0.notified().await;
    }
}

/// What the relay needs; built by `startup`.
#[derive(Debug, Clone)]
pub struct Relay {
    /// Registration's database, where the outbox lives.
    pub db: PgPool,
    /// The broker.
    pub amqp_url: String,
    /// Exchange names.
    pub topology: Topology,
    /// Rows per transaction: bounds the time a batch holds its row locks.
    pub batch_size: u16,
    /// Period of the safety sweep for rows whose wake-up was missed (e.g. written by
    /// another instance, or while the broker was down).
    pub sweep_interval: Duration,
    /// Signalled by the sign-up handler after each commit.
    pub wake: RelayWakeUp,
    /// The relay's broker link, for `/readyz`.
    pub status: BrokerStatus,
    /// Opens the sealed payloads just before they are sent.
    pub pii: Sealer,
}

/// What became of one row.
enum Sent {
    /// The broker confirmed it.
    Yes,
    /// Its payload does not open (its key was dropped from `PII_KEYS`): it stays in the
    /// outbox, logged, until the key is back.
    Unreadable,
}

/// Why a batch stopped.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    /// The broker link failed: reconnect.
    #[error(transparent)]
    Broker(#[from] MessagingError),
    /// The database failed: try again at the next wake-up or sweep.
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl Relay {
    /// Publishes outbox rows until `shutdown`, reconnecting whenever the broker goes away.
    pub async fn run(self, shutdown: CancellationToken) {
        describe_metrics();
        supervise(
            &self.amqp_url,
            "registration relay",
            &self.status.clone(),
            &shutdown,
            |connection| self.session(connection, &shutdown),
        )
        .await;
    }

    async fn session(
        &self,
        connection: BrokerConnection,
        shutdown: &CancellationToken,
    ) -> Result<(), MessagingError> {
        let publisher = connection.publisher().await?;
        publisher.declare_exchange(&self.topology).await?;
        self.status.set_connected();
        loop {
            self.drain(&publisher).await?;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.woken() => {}
                () = tokio::time::sleep(self.sweep_interval) => {}
                error = connection.failed() => return Err(error),
            }
        }
        connection.close().await;
        Ok(())
    }

    /// Publishes batches until the outbox is empty. Broker errors end the session;
    /// database errors are logged and left to the next wake-up.
    async fn drain(&self, publisher: &Publisher) -> Result<(), MessagingError> {
        loop {
            match self.publish_batch(publisher).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                // Nobody is bound yet (consumers not started): keep the row and try again
                // at the next sweep; the connection itself is fine.
                Err(RelayError::Broker(error @ MessagingError::Unroutable { .. })) => {
                    tracing::warn!(error = %error, "no queue is bound for the event yet; will retry");
                    return Ok(());
                }
                Err(RelayError::Broker(error)) => return Err(error),
                Err(RelayError::Database(error)) => {
                    tracing::warn!(error = %error, "outbox relay could not read the outbox; will retry");
                    return Ok(());
                }
            }
        }
    }

    /// Claims, publishes and marks one batch; returns how many rows were published.
    async fn publish_batch(&self, publisher: &Publisher) -> Result<usize, RelayError> {
        let mut tx = self.db.begin().await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(select_rows(
            "where published_at is null
             order by position limit $1
             for update skip locked",
        ))
        .bind(i64::from(self.batch_size))
        .fetch_all(&mut *tx)
        .await?;

        // Every row of the batch is published at once and the confirms are awaited
        // together: one round trip to the broker (and one of its disk syncs) per batch
        // instead of one per row. Rows whose publish failed stay unpublished for the next
        // attempt; the broker error, if any, ends the session after the commit.
        let outcomes =
            futures_util::future::join_all(rows.iter().map(|row| self.publish_row(publisher, row)))
                .await;
        let mut published = Vec::with_capacity(rows.len());
        let mut broker_error = None;
        for (row, outcome) in rows.iter().zip(outcomes) {
            match outcome {
                Ok(Sent::Yes) => published.push(row.position),
                Ok(Sent::Unreadable) => {}
                Err(error) => {
                    broker_error.get_or_insert(error);
                }
            }
        }
        if !published.is_empty() {
            sqlx::query("update outbox set published_at = now() where position = any($1)")
                .bind(&published)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        match broker_error {
            Some(error) => Err(error.into()),
            None => Ok(published.len()),
        }
    }

    /// Publishes one row inside a producer span that continues the sign-up's trace.
    async fn publish_row(
        &self,
        publisher: &Publisher,
        row: &OutboxRow,
    ) -> Result<Sent, MessagingError> {
        let exchange = self.topology.exchange();
        let span = tracing::info_span!(
            "publish",
            otel.name = format!("{} publish", messaging::topology::EXCHANGE),
            otel.kind = "producer",
            messaging.system = "rabbitmq",
            messaging.operation.type = "publish",
            messaging.destination.name = %exchange,
            messaging.rabbitmq.destination.routing_key = %row.event_type,
            messaging.message.id = %row.event_id,
        );
        let _ = span.set_parent(row.trace.restore());
        let headers = Headers::default().with_trace_context(&span.context());
        let message = match outgoing_message(row, headers, &self.pii) {
            Ok(message) => message,
            Err(error) => {
                span.in_scope(|| {
                    tracing::error!(error = %error, event_id = %row.event_id,
                        "event cannot be opened; it stays in the outbox");
                });
                return Ok(Sent::Unreadable);
            }
        };
        let result = publisher
            .publish(&exchange, &row.event_type, &message)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(()) => {
                metrics::counter!("events_published_total", "event_type" => row.event_type.clone())
                    .increment(1);
            }
            Err(error) => {
                span.in_scope(
                    || tracing::warn!(error = %error, event_id = %row.event_id, "publish failed"),
                );
                metrics::counter!("events_publish_failed_total", "event_type" => row.event_type.clone()).increment(1);
            }
        }
        result.map(|()| Sent::Yes)
    }
}

/// The AMQP message for a row: the same id, type, properties and body every time it is
/// sent, by the relay or by a replay, so consumers see one event however often it comes.
/// The body is the opened payload.
pub(crate) fn outgoing_message(
    row: &OutboxRow,
    headers: Headers,
    pii: &Sealer,
) -> Result<OutgoingMessage, PiiError> {
    Ok(OutgoingMessage {
        message_id: row.event_id.to_string(),
        event_type: row.event_type.clone(),
        correlation_id: row.aggregate_id.to_string(),
        source: SOURCE.to_owned(),
        timestamp: u64::try_from(row.created_at.timestamp()).unwrap_or_default(),
        headers,
        body: pii.open(PAYLOAD, &row.payload)?.into_bytes(),
    })
}

/// HELP texts, and the counters at 0 from the start (one line per event type registration
/// emits) so `rate()` and dashboards see them before the first publish or failure.
fn describe_metrics() {
    use events::Event as _;
    metrics::describe_counter!("events_published_total", "Events the broker confirmed.");
    metrics::describe_counter!(
        "events_publish_failed_total",
        "Publishes that failed and stay in the outbox for a retry."
    );
    let event_type = events::UserRegisteredV1::TYPE;
    metrics::counter!("events_published_total", "event_type" => event_type).increment(0);
    metrics::counter!("events_publish_failed_total", "event_type" => event_type).increment(0);
}
