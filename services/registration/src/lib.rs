//! Registration: the sign-up API and the producer of `user.registered.v1`.
//!
//! A sign-up writes the user and an outbox row in one transaction; the relay publishes the
//! row to RabbitMQ with publisher confirms. Nothing here knows who consumes the event.

/// Settings from flags and environment variables.
pub mod config;
/// Parsed input types: an `EmailAddress` or `DisplayName` that exists is valid.
pub mod domain;
/// The HTTP API: routes, error mapping, idempotency.
pub mod http;
/// The relay that publishes outbox rows.
pub mod outbox;
/// Building and running the app.
pub mod startup;
/// SQL for users and the outbox.
pub mod store;
