//! Registration: the sign-up API and the producer of `user.registered.v1`.
//!
//! A sign-up writes the user and an outbox row in one transaction; the relay publishes the
//! row to RabbitMQ with publisher confirms. Nothing here knows who consumes the event.

/// Settings from flags and environment variables.
pub mod config;
/// Parsed input types: an `EmailAddress` or `DisplayName` that exists is valid.
pub mod domain;
/// The outbox as the event log: the published events, kept for replay, and their expiry.
pub mod event_log;
/// The HTTP API: routes, error mapping, idempotency.
pub mod http;
/// The relay that publishes outbox rows.
pub mod outbox;
/// `registration replay`: republish logged events to one consumer's queue.
pub mod replay;
/// Building and running the app.
pub mod startup;
/// SQL for users and the outbox.
pub mod store;
