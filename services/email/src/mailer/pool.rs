//! A small pool of open SMTP connections, so a mail costs one mail transaction (MAIL, RCPT,
//! DATA) instead of a new connection, greeting and EHLO as well.
//!
//! Sized to the consumer's concurrency: every message in flight can have a connection, and
//! no more are ever opened. A connection that failed is dropped, never reused; one that sat
//! idle for a while is checked with `NOOP` first, because servers close idle connections and
//! a mail sent into a closed one would only fail and wait for its retry.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use lettre::{address::Envelope, transport::smtp::client::AsyncSmtpConnection};
use tokio::sync::Semaphore;

use super::{MailError, classify, endpoint::SmtpEndpoint};

/// An idle connection older than this is checked with `NOOP` before use.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(2);

/// An idle connection older than this is closed rather than reused: most servers time out
/// idle clients after a minute or so.
const MAX_IDLE: Duration = Duration::from_secs(50);

/// Open connections and the permits that bound them.
pub(super) struct SmtpPool {
    endpoint: SmtpEndpoint,
    idle: Mutex<Vec<IdleConnection>>,
    permits: Semaphore,
}

struct IdleConnection {
    connection: AsyncSmtpConnection,
    since: Instant,
}

impl std::fmt::Debug for SmtpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpPool")
            .field("endpoint", &self.endpoint)
            .field("available", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl SmtpPool {
    /// At most `size` connections to `endpoint`, opened on demand.
    pub(super) fn new(endpoint: SmtpEndpoint, size: usize) -> Self {
        Self {
            endpoint,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size.max(1)),
        }
    }

    /// One mail transaction on a pooled (or new) connection.
    pub(super) async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), MailError> {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| MailError::Transient("the SMTP pool is closed".to_owned()))?;
        let mut connection = match self.take_idle().await {
            Some(connection) => connection,
            None => self.endpoint.connect().await?,
        };
        match connection.send(envelope, message).await {
            Ok(_) => {
                self.put_back(connection);
                Ok(())
            }
            Err(error) => {
                connection.abort().await;
                Err(classify(error))
            }
        }
    }

    /// The most recently used idle connection that still works, if any.
    async fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let IdleConnection {
                mut connection,
                since,
            } = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()?;
            let idle_for = since.elapsed();
            if idle_for > MAX_IDLE || connection.has_broken() {
                connection.abort().await;
                continue;
            }
            if idle_for > CHECK_AFTER_IDLE && !connection.test_connected().await {
                connection.abort().await;
                continue;
            }
            return Some(connection);
        }
    }

    fn put_back(&self, connection: AsyncSmtpConnection) {
        if connection.has_broken() {
            return;
        }
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(IdleConnection {
                connection,
                since: Instant::now(),
            });
    }
}
