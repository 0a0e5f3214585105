//! RabbitMQ for the services, through lapin: the topology, confirmed publishing, and a
//! consume loop that turns a handler's verdict into ack, retry or dead-letter.
//!
//! # Delivery guarantees
//!
//! - **Publishing** waits for the broker's confirm of each message and publishes with
//!   `mandatory`, so a message that reached no queue counts as not delivered. A caller only
//!   treats a message as sent once [`publisher::Publisher::publish`] returned `Ok`.
//! - **Consuming** uses manual acks and a bounded prefetch. A message is acked only after
//!   its handler finished and whatever follows from its verdict (a retry copy, a
//!   dead-letter copy) has itself been confirmed. A crash at any point means redelivery,
//!   never loss; handlers make redelivery harmless by recording the event id (the inbox).
//! - **Retries** never hold the message: a retry copy goes to a delay queue whose TTL sends
//!   it back to the work queue (RabbitMQ 3.10 has no delayed-message plugin). After the
//!   last attempt, or at once for a message that can never succeed, the message goes to
//!   `<queue>.dlq` with the reason in its headers.
//! - **Connections** are supervised: when the broker goes away, [`connection::supervise`]
//!   reconnects with backoff, re-declares the topology and starts the session again.
//!

/// Connecting, and the reconnect loop every broker session runs under.
pub mod connection;
// The consume loop: decode, call the handler, ack / retry / dead-letter.
pub mod consumer;
// Listing and redriving dead-lettered messages (the `dlq` subcommand).
pub mod dead_letters;
mod error;
// The headers this system reads and writes, behind one typed value.
pub mod headers;
/// What a handler returns.
pub mod outcome;
/// One confirmed publish with CloudEvents properties.
pub mod publisher;
/// The backoff schedule and the attempt counter in the headers.
pub mod retry;
// TLS settings carried in the AMQP URL (`cacertfile`, `certfile`, `keyfile`).
mod tls;
/// Exchange, work queues, delay queues and dead-letter queues, by name.
pub mod topology;
mod trace_context;

pub use error::MessagingError;
