//! Registration: the sign-up API and the producer of `user.registered.v1`.
//!
//! A sign-up writes the user and an outbox row in one transaction; the relay publishes the
//! row to RabbitMQ with publisher confirms. Nothing here knows who consumes the event.

/// Settings from flags and environment variables.
pub mod config;
// Parsed input types: an `EmailAddress` or `DisplayName` that exists is valid.
pub mod domain;
// The HTTP API: routes, error mapping, idempotency.
pub mod http;
// The outbox table end to end: written with the user in one statement, the relay that
// publishes it, the backlog gauges, the event log's retention and replay, and the one page
// that follows a sign-up's trace context from the HTTP request to the consumers.
pub mod outbox;
// Concurrent sign-ups written together: one statement and one commit per batch.
pub mod sign_ups;
// Building and running the app.
pub mod startup;
// SQL for users and idempotency keys.
pub mod store;
