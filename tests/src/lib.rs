//! The system-test harness: runs the real `registration`, `email` and `profile` binaries
//! as processes against the local RabbitMQ and PostgreSQL, with an SMTP server, an OTLP
//! receiver and TCP proxies that the tests own.
//!
//! Every [`system::TestSystem`] gets its own databases and its own exchange and queue
//! names (a random prefix), so tests run in parallel without seeing each other's rows or
//! messages, and it removes them when dropped.
//!
//! Fault-injection tests put services behind [`tcp_proxy::TcpProxy`]s
//! ([`system::Options`]), kill and restart processes ([`system::TestSystem::restart`]),
//! drive a [`burst::Burst`] of sign-ups meanwhile, and count what happened with
//! [`system::TestSystem::settle`] ([`effects::Effects`]).
//!
//! Only `events` is linked from the workspace: the services are exercised from outside,
//! the way a user runs them.

/// Building and locating the service binaries.
pub mod binaries;
/// Talking to RabbitMQ directly: raw publishes, queue inspection, cleanup.
pub mod broker;
pub mod burst;
pub mod effects;
pub mod otlp_sink;
/// One running service process.
pub mod process;
pub mod smtp_sink;
/// The three services wired together for one test.
pub mod system;
pub mod tcp_proxy;

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
}
