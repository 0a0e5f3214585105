use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::StreamExt;
use lapin::{Connection, ConnectionProperties, Event, types::LongString};
use tokio_util::sync::CancellationToken;

use crate::{MessagingError, publisher::Publisher};

/// Whether a service currently has a working broker connection; `/readyz` reads it.
/// Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct BrokerStatus(Arc<AtomicBool>);

impl BrokerStatus {
    /// True while a session runs on an open connection and has declared what it needs.
    pub fn is_connected(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Called by a session once its topology is declared: only then can it do its work
    /// (a consumer reported ready before its queue is bound would let events pass it by).
    /// [`supervise`] clears it when the session ends.
    pub fn set_connected(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Called by [`supervise`] when a session ends, and by a session as soon as it sees its
    /// connection fail, so `/readyz` turns 503 without waiting for the session to wind down.
    pub(crate) fn set_disconnected(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Opens one connection, named so that it can be told apart in the management UI, with
/// the TLS settings the URL carries ([`crate::tls`]).
async fn connect(url: &str, name: &str) -> Result<Connection, MessagingError> {
    let properties = ConnectionProperties::default().with_connection_name(LongString::from(name));
    let endpoint = crate::tls::endpoint(url)?;
    let runtime = lapin::runtime::default_runtime()?;
    Ok(Connection::connect_with_config(&endpoint.url, properties, endpoint.tls, runtime).await?)
}

/// An open connection to the broker, in this crate's vocabulary: what a service or tool
/// can do with it is open a [`Publisher`], notice that it failed, and close it.
#[derive(Debug)]
pub struct BrokerConnection(Connection);

impl BrokerConnection {
    /// Connects to `url`; `name` shows in the management UI's connection list.
    pub async fn open(url: &str, name: &str) -> Result<Self, MessagingError> {
        Ok(Self(connect(url, name).await?))
    }

    /// A channel in publisher-confirm mode on this connection.
    pub async fn publisher(&self) -> Result<Publisher, MessagingError> {
        Publisher::open(&self.0).await
    }

    /// Resolves when the connection reports an error (or its event stream ends), with
    /// that error.
    ///
    /// A session that sits idle (the relay waiting for work) selects on this so that it
    /// notices a dead socket at once instead of at its next publish, and `/readyz` stops
    /// claiming the broker is up.
    pub async fn failed(&self) -> MessagingError {
        failed(&self.0).await
    }

    /// Closes the connection at the end of a clean stop; best effort (see
    /// `close_for_shutdown`).
    pub async fn close(&self) {
        close_for_shutdown(&self.0).await;
    }

    /// The lapin connection, for this crate's own modules.
    pub(crate) fn inner(&self) -> &Connection {
        &self.0
    }
}

/// Runs `session` on a fresh connection, again and again, until `shutdown` is cancelled.
///
/// This is the reconnect loop of every broker user in the system. A session returns when
/// its connection fails (it must not swallow broker errors); the loop then waits with
/// exponential backoff (capped at 10 s, reset after a session that ran a while) and starts
/// over with a new connection, so the session re-declares its topology and re-subscribes.
/// lapin's own auto-recovery is left off: one explicit loop is easier to reason about and
/// to test by cutting connections.
pub async fn supervise<S, Fut>(
    url: &str,
    name: &str,
    status: &BrokerStatus,
    shutdown: &CancellationToken,
    mut session: S,
) where
    S: FnMut(BrokerConnection) -> Fut,
    Fut: Future<Output = Result<(), MessagingError>>,
{
    let mut delays = backoff();
    while !shutdown.is_cancelled() {
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            connection = connect(url, name) => match connection {
                Ok(connection) => {
                    tracing::info!(connection = name, "connected to the broker");
                    let started = tokio::time::Instant::now();
                    let result = session(BrokerConnection(connection)).await;
                    status.set_disconnected();
                    if started.elapsed() > Duration::from_secs(30) {
                        delays = backoff();
                    }
                    result
                }
                Err(error) => Err(error),
            },
        };
        match result {
            Ok(()) => return,
            Err(error) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(10));
                tracing::warn!(connection = name, error = %error, retry_in = ?delay, "broker session ended");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Closes the connection at the end of a clean shutdown. Best effort: the work is done and
/// acked, and if the broker or a channel is already going away there is nothing left to
/// save, so a failure here is not worth an error in the logs.
pub(crate) async fn close_for_shutdown(connection: &Connection) {
    if let Err(error) = connection.close(200, "shutting down".into()).await {
        tracing::debug!(error = %error, "connection was already closing");
    }
}

/// Resolves when `connection` reports an error (or its event stream ends), with that error.
///
/// A session that sits idle (the relay waiting for work) selects on this so that it notices
/// a dead socket at once instead of at its next publish, and `/readyz` stops claiming the
/// broker is up. A consuming session does not need it: its delivery stream fails instead,
/// and it lets the handlers in flight finish rather than abandon them half-way.
pub(crate) async fn failed(connection: &Connection) -> MessagingError {
    let mut events = connection.events_listener();
    while let Some(event) = events.next().await {
        if let Event::Error(error) = event {
            return MessagingError::from(error);
        }
    }
    MessagingError::ConnectionClosed
}

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
        .build()
}
