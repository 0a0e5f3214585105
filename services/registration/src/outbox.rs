//! The outbox relay: moves committed events from the `outbox` table to RabbitMQ.
//!
//! Each batch runs in one transaction: claim up to N unpublished rows with
//! `FOR UPDATE SKIP LOCKED` (so several relays share the work without publishing a row
//! twice at the same time), publish each with a publisher confirm, mark the confirmed ones
//! published, commit. If the broker fails mid-batch the confirmed rows are still marked
//! and the rest stay for the next connection. A crash after a confirm but before the
//! commit republishes that row later: delivery is at least once, and consumers
//! deduplicate on the event id.

use std::{sync::Arc, time::Duration};

use messaging::lapin::{Channel, Connection, types::FieldTable};
use messaging::{
    MessagingError,
    connection::{BrokerStatus, supervise},
    publisher::{confirm_channel, publish},
    topology::Topology,
    trace_context,
};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::event_log::LoggedEvent;

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
    /// Notified by the sign-up handler after each commit.
    pub wake: Arc<Notify>,
    /// The relay's broker link, for `/readyz`.
    pub status: BrokerStatus,
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
        connection: Connection,
        shutdown: &CancellationToken,
    ) -> Result<(), MessagingError> {
        let channel = confirm_channel(&connection).await?;
        self.topology.declare_exchange(&channel).await?;
        self.status.set_connected();
        loop {
            self.drain(&channel).await?;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.sweep_interval) => {}
                error = messaging::connection::failed(&connection) => return Err(error),
            }
        }
        messaging::connection::close_for_shutdown(&connection).await;
        Ok(())
    }

    /// Publishes batches until the outbox is empty. Broker errors end the session;
    /// database errors are logged and left to the next wake-up.
    async fn drain(&self, channel: &Channel) -> Result<(), MessagingError> {
        loop {
            match self.publish_batch(channel).await {
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
    async fn publish_batch(&self, channel: &Channel) -> Result<usize, RelayError> {
        let mut tx = self.db.begin().await?;
        let rows: Vec<LoggedEvent> = sqlx::query_as(
            "select position, event_id, event_type, aggregate_id, payload::text as payload,
                    traceparent, tracestate, created_at
             from outbox where published_at is null
             order by position limit $1
             for update skip locked",
        )
        .bind(i64::from(self.batch_size))
        .fetch_all(&mut *tx)
        .await?;

        let mut published = Vec::with_capacity(rows.len());
        let mut broker_error = None;
        for row in &rows {
            match self.publish_row(channel, row).await {
                Ok(()) => published.push(row.position),
                Err(error) => {
                    broker_error = Some(error);
                    break;
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
        channel: &Channel,
        row: &LoggedEvent,
    ) -> Result<(), MessagingError> {
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
        let _ = span.set_parent(row.trace_context());
        let mut headers = FieldTable::default();
        trace_context::inject(&span.context(), &mut headers);
        let message = row.message(headers);
        let result = publish(channel, &exchange, &row.event_type, &message)
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
        result
    }
}

/// Every few seconds: how many events wait in the outbox and how old the oldest is
/// (`outbox_backlog_events`, `outbox_oldest_unpublished_age_seconds`). A growing backlog
/// or age means the relay cannot publish: broker down, or the relay is not running.
pub async fn report_backlog(db: PgPool, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let backlog: Result<(i64, Option<f64>), _> = sqlx::query_as(
            "select count(*), extract(epoch from now() - min(created_at))::float8
             from outbox where published_at is null",
        )
        .fetch_one(&db)
        .await;
        match backlog {
            Ok((count, oldest)) => {
                metrics::gauge!("outbox_backlog_events").set(count as f64);
                metrics::gauge!("outbox_oldest_unpublished_age_seconds").set(oldest.unwrap_or(0.0));
            }
            Err(error) => tracing::debug!(error = %error, "cannot measure the outbox backlog"),
        }
    }
}
