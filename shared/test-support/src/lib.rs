//! For the services' in-process API tests only (`services/*/tests/api`), never for a
//! service's own code: registration, email and profile each build their app in the test
//! process, run it on port 0 against the local PostgreSQL and RabbitMQ, and drive it over
//! HTTP, and all three need the same scaffolding around that.
//!
//! - [`Isolation`]: a database and a topology prefix of the test's own, so tests run in
//!   parallel on one PostgreSQL and one RabbitMQ without seeing each other.
//! - [`RunningApp`]: the built [`App`](service_kit::app::App) running until `/readyz` says
//!   200, the HTTP client to drive it with, and [`RunningApp::stop`], which stops it as
//!   SIGTERM would.
//! - [`Cleanup`]: what the app created (its database, exchange and queues), removed when it
//!   stops, or best effort when a test panics first.
//!
//! It exists so that this scaffolding is written once: it used to be copied into each
//! service's `tests/api/helpers.rs`, the copies differing only in the service's name. What
//! stays in a service's helpers is its own: its configuration flags, the queues it
//! declares, and the typed requests its tests send.

mod answers;
mod isolation;
mod running_app;

use std::time::Duration;

pub use answers::{check_served_openapi, ensure_openapi_committed, problem};
pub use isolation::{Cleanup, Isolation};
pub use running_app::RunningApp;

/// The local PostgreSQL (trust auth); each test adds a database of its own to it.
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
/// The local RabbitMQ, the apps' default broker.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The key that seals personal data in the tests' databases (`--pii-keys`).
pub const PII_KEYS: &str = "test-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The key of the tests' lookup hashes (`--pii-lookup-key`).
pub const PII_LOOKUP_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
/// A sealer with the tests' keys, for tests that assemble a service's parts by hand.
pub fn test_sealer() -> service_kit::pii::Sealer {
    service_kit::pii::PiiSettings {
        pii_keys: Some(PII_KEYS.to_owned()),
        pii_keys_file: None,
        pii_lookup_key: Some(PII_LOOKUP_KEY.to_owned()),
        pii_lookup_key_file: None,
    }
    .sealer()
    .expect("the test keys are valid")
}

/// How long an app may take to become ready, and to stop.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// The one retry delay left by `--retry-max-attempts 2 --retry-initial-delay-ms 100`
/// ([`Isolation::consumer_args`]), so a consuming app declares one delay queue, not five.
pub const RETRY_DELAY_MS: &str = "100";
