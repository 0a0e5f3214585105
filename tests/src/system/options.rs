//! What a test can choose before the services start, and the names it chooses with.

use std::time::Duration;

/// The consumers' first retry delay in tests: short, so retry tests finish quickly.
pub const RETRY_INITIAL_DELAY_MS: u64 = 200;

/// Attempts in all before a message is dead-lettered, in tests.
pub const RETRY_MAX_ATTEMPTS: u32 = 4;

/// The consumers' prefetch in tests (the services' default is 64): the deliveries each
/// consumer has in flight at most, and so its largest group commit. Small, so that the
/// fault scenarios see many batches.
pub const CONSUMER_PREFETCH: u16 = 8;

/// Each service's database pool in tests (the services' default is 10).
pub const DATABASE_POOL: u32 = 5;

/// The services by name, so that tests say which one they mean without strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Sign-up API + outbox relay.
    Registration,
    /// Welcome mails.
    Email,
    /// Profile read model.
    Profile,
}

impl Service {
    /// All three, in start order.
    pub const ALL: [Self; 3] = [Self::Registration, Self::Email, Self::Profile];

    /// The binary's (and the database's) name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Email => "email",
            Self::Profile => "profile",
        }
    }
}

/// A network path from a service to one of the servers it depends on, which a test can
/// put behind a [`crate::tcp_proxy::TcpProxy`] of its own and then break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The service's connections to RabbitMQ (the relay's, or a consumer's).
    Amqp,
    /// The service's connections to PostgreSQL (its pool).
    Postgres,
    /// The email service's connections to the SMTP server.
    Smtp,
}

/// A CA and a server certificate signed by it (PEM files, from
/// `deploy/tls/generate.sh`), for [`Options::tls`].
#[derive(Debug, Clone)]
pub struct TestTls {
    /// The CA the services are told to trust (`cacertfile=`).
    pub ca: std::path::PathBuf,
    /// The certificate chain the TLS endpoints present, valid for `localhost`.
    pub cert: std::path::PathBuf,
    /// Its key.
    pub key: std::path::PathBuf,
}

/// Knobs a test can turn before the services start; the defaults are what most tests
/// want, so a test names only the fault it is about.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The system's names, when the test must know them before the services start (to
    /// create broker users and database roles for them); a fresh random
    /// [`super::topology::Topology`] with [`Self::retry_schedule`] if `None`.
    pub topology: Option<super::topology::Topology>,
    /// A service's AMQP URL instead of the local broker as guest: through a proxy the
    /// test started itself, or as another broker user.
    pub amqp_urls: Vec<(Service, String)>,
    /// A service's database URL instead of its database as the superuser, e.g. as a
    /// role of its own.
    pub database_urls: Vec<(Service, String)>,
    /// Extra variables for every service.
    pub extra_env: Vec<(String, String)>,
    /// Put each service's broker connections behind a proxy of its own
    /// ([`super::TestSystem::proxy`] with [`Link::Amqp`]), so a test can cut publishers
    /// and consumers separately. Takes precedence over `amqp_urls`.
    pub proxy_amqp: bool,
    /// Put each service's database connections behind a proxy of its own
    /// ([`Link::Postgres`]). The harness's own queries
    /// ([`crate::effects::EffectsProbe::db`]) go direct, so a test can still count rows
    /// while a service is cut off.
    pub proxy_postgres: bool,
    /// Put the email service's SMTP connections behind a proxy ([`Link::Smtp`]): a
    /// disabled proxy is an SMTP server that is down, as opposed to
    /// [`crate::smtp_sink::SmtpSink::set_accepting`], a server that is up but refuses.
    pub proxy_smtp: bool,
    /// Every service reaches RabbitMQ, and email its SMTP server, over TLS: through a
    /// [`crate::tls_terminator::TlsTerminator`] presenting `cert`, with `cacertfile=ca`
    /// in its `amqps://` and `smtps://` URLs. [`Self::proxy_amqp`] and
    /// [`Self::proxy_smtp`] take precedence.
    pub tls: Option<TestTls>,
    /// The consumers' first retry delay; [`RETRY_INITIAL_DELAY_MS`] if `None`.
    pub retry_initial_delay_ms: Option<u64>,
    /// The consumers' attempts in all; [`RETRY_MAX_ATTEMPTS`] if `None`. A test whose
    /// outage outlasts the default schedule raises it, so that a transient fault is
    /// bridged by retries rather than ending in the dead-letter queue.
    pub retry_max_attempts: Option<u32>,
}

impl Options {
    /// The retry schedule these options give the consumers.
    pub fn retry_schedule(&self) -> RetrySchedule {
        RetrySchedule {
            initial_delay_ms: self
                .retry_initial_delay_ms
                .unwrap_or(RETRY_INITIAL_DELAY_MS),
            max_attempts: self.retry_max_attempts.unwrap_or(RETRY_MAX_ATTEMPTS),
        }
    }
}

/// The consumers' retry schedule in one system: needed to name (and delete) the delay
/// queues, and by tests that check how far apart the attempts were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The first delay, in milliseconds; each further one is twice the one before.
    pub initial_delay_ms: u64,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl RetrySchedule {
    /// The delay after each failed attempt but the last: `max_attempts - 1` of them.
    pub fn delays(&self) -> Vec<Duration> {
        (0..self.max_attempts.saturating_sub(1))
            .map(|step| Duration::from_millis(self.initial_delay_ms << step))
            .collect()
    }
}
