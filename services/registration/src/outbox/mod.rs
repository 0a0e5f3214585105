//! The `outbox` table, end to end: written with the user in the sign-up transaction,
//! published by the relay, kept afterwards as the event log for replay, purged when old.
//!
//! | file | what it does with the table |
//! |---|---|
//! | `enqueue.rs` | [`OutboxEntry`]: the row a sign-up writes in the user's own statement |
//! | `relay.rs` | [`Relay`]: claims unpublished rows, publishes them, marks them published; [`RelayWakeUp`]: the in-process signal after a sign-up's commit |
//! | `backlog.rs` | [`report_backlog`]: the backlog gauges |
//! | `retention.rs` | [`retention::event_log`]: which published rows the cleanup deletes |
//! | `replay.rs` | [`replay::replay`]: sends published rows again to one queue |
//! | `trace.rs` | `StoredTraceContext`: the row's trace context, captured and restored |
//!
//! # How one trace follows a sign-up from the HTTP request to the consumers
//!
//! A sign-up and its event are handled by different tasks, processes and services, at
//! different times; the trace context is handed on five times, in three forms (an
//! OpenTelemetry context in memory, two text columns, two AMQP headers):
//!
//! 1. **The request span.** `service_kit::trace_http::layer` opens the server span
//!    `POST /users`, the child of the caller's `traceparent` header if there is one, and
//!    the sign-up handler (`http::users::register`) runs inside it.
//! 2. **Into the row.** The handler prepares the row with [`OutboxEntry::new`], which takes
//!    `StoredTraceContext::capture_current` while the request span is current (before the
//!    statement's own `INSERT users` span exists), and `store::insert_users` writes it as
//!    W3C text to the `traceparent` and `tracestate` columns of the row, next to the
//!    event, in the statement that inserts the user (with the other sign-ups of its
//!    batch, `sign_ups`, each row with its own request's context).
//! 3. **Out of the row.** The relay, later and in another task, reads the row back
//!    (`OutboxRow`, whose `trace` field is the two columns) and, in
//!    `relay::Relay::publish_row`, makes `StoredTraceContext::restore` the parent of the
//!    producer span `users publish`.
//! 4. **Into the message.** Still in `publish_row`, `messaging::trace_context::inject`
//!    writes the producer span's context into the AMQP headers as `traceparent` and
//!    `tracestate`, and `messaging::publisher::publish` sends the message.
//! 5. **Out of the message.** Each consumer (`messaging::consumer::run`, per delivery)
//!    reads those headers with `messaging::trace_context::extract` and opens
//!    `<queue> process` (e.g. `email.user-registered process`) as their child, or, with
//!    `CONSUMER_TRACE_MODE=link` or for a message sent again by a person (DLQ redrive,
//!    replay), as a new trace with a link to them.
//!
//! Steps 2 to 5 use the global text-map propagator, which is W3C Trace Context only
//! because `telemetry::init` installs it; without that call it is a no-op. The `replay`
//! subcommand ([`replay::replay`], `replay_headers`) takes steps 3 and 4 again from the
//! stored row and adds `x-replayed`; as `main` runs it without `telemetry::init`, replayed
//! messages currently carry no `traceparent` and their processing spans have no link.

mod backlog;
mod enqueue;
mod relay;
pub mod replay;
pub mod retention;
mod trace;

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

pub use backlog::report_backlog;
pub use enqueue::{EntryError, OutboxEntry};
pub use relay::{Relay, RelayWakeUp};
pub(crate) use trace::StoredTraceContext;

/// The CloudEvents `source` of every event this service emits: set in the envelope by the
/// sign-up handler and in the AMQP `app_id` of every message sent from the outbox.
pub const SOURCE: &str = "/registration";

/// The sealed payload's column ([`service_kit::pii`]): the envelope holds the user's
/// address and name.
pub(crate) const PAYLOAD: service_kit::pii::Column = "outbox.payload";

/// The columns of an [`OutboxRow`], in one place so that every query reading rows (the
/// relay's claim, the replay's pages) agrees with the struct. The payload is read sealed:
/// it is opened just before it is sent, and never parsed here.
const COLUMNS: &str = "position, event_id, event_type, aggregate_id,
                       payload_sealed as payload, traceparent, tracestate, created_at";

/// `select <COLUMNS> from outbox <rest>`, for every query that reads [`OutboxRow`]s.
///
/// `rest` is `&'static str` so that only SQL text written in this crate is spliced in,
/// never data (which goes through bind parameters): that is what makes the
/// `AssertSqlSafe` sound.
fn select_rows(rest: &'static str) -> AssertSqlSafe<String> {
    AssertSqlSafe(format!("select {COLUMNS} from outbox {rest}"))
}

/// One row of the `outbox` table: an event, ready to be published (or published again by
/// a replay). Kept after publication, which makes the table the event log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct OutboxRow {
    /// Publication order; also the replay's paging key.
    pub(crate) position: i64,
    /// The envelope's `id`: the AMQP `message_id`, and every consumer's deduplication key.
    pub(crate) event_id: Uuid,
    /// The envelope's `type`: the routing key and the AMQP `type`.
    pub(crate) event_type: String,
    /// The user the event is about: the AMQP `correlation_id`.
    pub(crate) aggregate_id: Uuid,
    /// The whole envelope as JSON text, sealed: the message body, exactly as it was
    /// enqueued, once opened ([`OutboxRow::body`]).
    pub(crate) payload: Vec<u8>,
    /// The trace context of the sign-up request (the `traceparent`, `tracestate` columns).
    #[sqlx(flatten)]
    pub(crate) trace: StoredTraceContext,
    /// When the row was committed: the AMQP `timestamp`.
    pub(crate) created_at: DateTime<Utc>,
}
