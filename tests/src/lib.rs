//! The system-test harness: runs the real `registration`, `email` and `profile` binaries
//! as processes against the local RabbitMQ and PostgreSQL, with an SMTP server, an OTLP
//! receiver and TCP proxies that the tests own.
//!
//! Every [`system::TestSystem`] gets its own databases and its own exchange and queue
//! names (a random prefix), so tests run in parallel without seeing each other's rows or
//! messages, and it removes them when dropped.
//!
//! Fault-injection tests put services behind [`tcp_proxy::TcpProxy`]s
//! ([`system::Options`]), kill and restart processes ([`system::Processes::restart`]),
//! drive a [`burst::Burst`] of sign-ups meanwhile, and count what happened with
//! [`effects::EffectsProbe::settle`] ([`effects::Effects`]). Every wait goes through
//! [`eventually::eventually`], which fails the test when what it waits for does not
//! happen; "nothing more arrives" is checked with a marker sign-up
//! ([`effects::EffectsProbe::pass_marker`]), not a sleep.
//!
//! Only `events` is linked from the workspace: the services are exercised from outside,
//! the way a user runs them.
//!
//! # Layout
//!
//! - [`system`]: the three services wired together for one test, and clients for them;
//! - [`effects`]: counting what a system did (rows, mails, queues), and the marker check;
//! - [`eventually`]: polling until something happens, failing the test when it does not;
//! - [`burst`]: a burst of sign-ups that runs while a test breaks things;
//! - [`smtp_sink`], [`otlp_sink`], [`tcp_proxy`], [`tls_terminator`]: the SMTP server,
//!   OTLP receiver, proxies and TLS endpoints the tests own;
//! - [`binaries`], [`process`], [`broker`]: building and running the service binaries,
//!   and talking to RabbitMQ directly;
//! - [`load`]: the load generator (the `load` tool), [`bench`](mod@bench): the benchmark (the
//!   `bench` tool), and [`procfs`]: CPU time and memory of processes, for both.

pub mod bench;
/// Building and locating the service binaries.
pub mod binaries;
/// Talking to RabbitMQ directly: raw publishes, queue inspection, cleanup.
pub mod broker;
pub mod burst;
pub mod effects;
pub mod eventually;
pub mod load;
pub mod otlp_sink;
/// One running service process.
pub mod process;
pub mod procfs;
pub mod smtp_sink;
pub mod system;
pub mod tcp_proxy;
pub mod tls_terminator;

/// The local servers the tests (and the services' defaults) use.
pub mod defaults {
    /// RabbitMQ, guest/guest.
    pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
    /// RabbitMQ's address, for proxies.
    pub const AMQP_ADDR: &str = "127.0.0.1:5672";
    /// PostgreSQL's address, for proxies.
    pub const POSTGRES_ADDR: &str = "127.0.0.1:5432";
    /// PostgreSQL, trust auth; the database name is appended.
    pub const POSTGRES_BASE: &str = "postgres://postgres@127.0.0.1:5432";
    /// The key that seals personal data in the tests' databases (`PII_KEYS`).
    pub const PII_KEYS: &str = "test-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    /// The key of the tests' lookup hashes (`PII_LOOKUP_KEY`).
    pub const PII_LOOKUP_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    /// A sealer with the tests' keys: opens what the services sealed in their databases.
    pub fn sealer() -> service_kit::pii::Sealer {
        service_kit::pii::PiiSettings {
            pii_keys: Some(PII_KEYS.to_owned()),
            pii_keys_file: None,
            pii_lookup_key: Some(PII_LOOKUP_KEY.to_owned()),
            pii_lookup_key_file: None,
        }
        .sealer()
        .expect("the test keys are valid")
    }
}
