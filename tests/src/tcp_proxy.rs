//! A TCP proxy that a test controls, for injecting real connection failures.
//!
//! A service under test is configured to reach RabbitMQ, PostgreSQL or SMTP
//! through the proxy instead of directly. The test can then break the network
//! path the way production breaks it (a broker restart, a dropped connection, a
//! refused reconnect) and check that the service recovers, without stopping the
//! shared broker or database that other tests use.
//!
//! Two switches:
//! - [`TcpProxy::cut_all`] resets every live connection once, but keeps accepting:
//!   a blip the client must reconnect after.
//! - [`TcpProxy::set_enabled`] with `false` cuts every live connection *and* resets
//!   each new one as soon as it is accepted: an outage that lasts until the test
//!   switches the proxy back on. The client sees the failure at once, never a
//!   hang, so the test measures the service's retry logic, not a TCP timeout.
//!
//! # How a cut reaches the connections
//!
//! A `watch` channel holds a generation number. Every connection subscribes when
//! it is accepted, and a cut bumps the number, which wakes them all. The
//! alternative, one `CancellationToken` per connection kept in a
//! `Mutex<Vec<_>>`, needs pruning of finished connections; the channel needs no
//! bookkeeping at all.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long the accept loop pauses after a failed `accept`, so that a
/// persistent error (e.g. out of file descriptors) does not spin a core.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// A running proxy from `127.0.0.1:PORT` to one upstream address.
///
/// Dropping it stops the accept loop and resets every connection it carries.
#[derive(Debug)]
pub struct TcpProxy {
    /// Where the proxy listens.
    addr: SocketAddr,
    /// State shared with the accept loop and the connections.
    shared: Arc<Shared>,
    /// Cancelled on drop; the accept loop and every connection stop on it.
    shutdown: CancellationToken,
}

/// What the proxy's tasks share with the [`TcpProxy`] handle.
#[derive(Debug)]
struct Shared {
    /// The address every accepted connection is relayed to.
    upstream: SocketAddr,
    /// Whether new connections are relayed (`true`) or reset (`false`).
    enabled: AtomicBool,
    /// How many connections were accepted, relayed or reset.
    accepted: AtomicU64,
    /// The cut generation: bumping it cuts every connection subscribed to it.
    generation: watch::Sender<u64>,
}

impl TcpProxy {
    /// Binds `127.0.0.1:0` and starts relaying to `upstream` in a background task.
    ///
    /// Must be called inside a Tokio runtime. The upstream is not contacted
    /// until a client connects, so the proxy can be started before the service
    /// it fronts.
    ///
    /// # Errors
    ///
    /// Returns the I/O error if the listener cannot be bound.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            enabled: AtomicBool::new(true),
            accepted: AtomicU64::new(0),
            generation: watch::Sender::new(0),
        });
        let shutdown = CancellationToken::new();
        tokio::spawn(accept_loop(listener, shared.clone(), shutdown.clone()));
        Ok(Self {
            addr,
            shared,
            shutdown,
        })
    }

    /// The socket address clients should connect to instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients should connect to (the host is always `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the proxy relays to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Switches relaying on (`true`, the default) or off (`false`).
    ///
    /// Switching off also cuts every live connection. While off, each new
    /// connection is accepted and reset at once, so a client's connect
    /// succeeds and its first read or write fails: what a client sees when a
    /// broker goes away.
    pub fn set_enabled(&self, enabled: bool) {
        // The flag is stored before the cut so that a connection accepted in
        // between is caught by one or the other (see `accept_loop`).
        self.shared.enabled.store(enabled, Ordering::SeqCst);
        if !enabled {
            self.cut_all();
        }
    }

    /// Resets every live connection now, but keeps accepting new ones.
    pub fn cut_all(&self) {
        self.shared
            .generation
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// How many connections the proxy has accepted since it started, counting
    /// the ones reset while disabled: a measure of how often a client (re)connected.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Accepts connections until `shutdown`, relaying or resetting each one.
///
/// A connection subscribes to the cut generation *before* the `enabled` check.
/// `set_enabled(false)` stores the flag before it bumps the generation, so a
/// connection that subscribed too late to see the bump is certain to see the
/// flag; no connection can slip through an outage.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _peer)) = accepted else {
            tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let cut = shared.generation.subscribe();
        if shared.enabled.load(Ordering::SeqCst) {
            tokio::spawn(relay(client, shared.upstream, cut, shutdown.clone()));
        } else {
            reset(client);
        }
    }
}

/// Relays one client to `upstream` until either side closes, the connection
/// is cut, or the proxy shuts down.
async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut cut: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    let ended_cleanly = tokio::select! {
        piped = pipe(&mut client, upstream) => piped.is_ok(),
        // `Err` here means the proxy is gone, which is a cut as well.
        _ = cut.changed() => false,
        () = shutdown.cancelled() => false,
    };
    if !ended_cleanly {
        reset(client);
    }
}

/// Connects to `upstream` and copies bytes both ways until both directions
/// have closed. Dropping the future drops the upstream socket, which closes it.
async fn pipe(client: &mut TcpStream, upstream: SocketAddr) -> io::Result<()> {
    let mut server = TcpStream::connect(upstream).await?;
    tokio::io::copy_bidirectional(client, &mut server).await?;
    Ok(())
}

/// Closes `stream` with a TCP reset rather than an orderly FIN.
///
/// A reset is how a crashed peer or a broken network path looks to the client,
/// and it fails the client's next read *and* write immediately, whereas after a
/// FIN a client may still write successfully once. A zero linger time makes
/// the close send RST and return at once, without blocking the thread.
fn reset(stream: TcpStream) {
    // If the option cannot be set the close is an orderly one, which the
    // client also sees as a closed connection; nothing more to do.
    let _ = stream.set_zero_linger();
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// How long a test waits for a reply it expects, or for a close it expects.
    const PATIENCE: Duration = Duration::from_secs(5);

    /// Starts a server that writes back whatever it reads.
    async fn echo_server() -> io::Result<SocketAddr> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut reader, mut writer) = stream.split();
                    let _ = tokio::io::copy(&mut reader, &mut writer).await;
                });
            }
        });
        Ok(addr)
    }

    /// Sends `message` and expects it back through the proxy.
    async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> anyhow::Result<()> {
        stream.write_all(message).await?;
        let mut echoed = vec![0; message.len()];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut echoed)).await??;
        assert_eq!(echoed, message);
        Ok(())
    }

    /// Whether the peer has closed `stream` (end of stream or reset) within
    /// the patience window; `false` if data arrived or nothing happened.
    async fn is_closed(stream: &mut TcpStream) -> bool {
        let mut buffer = [0; 16];
        match tokio::time::timeout(PATIENCE, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }

    /// Bytes flow both ways through an enabled proxy.
    #[tokio::test]
    async fn an_enabled_proxy_relays_both_ways() -> anyhow::Result<()> {
        let upstream = echo_server().await?;
        let proxy = TcpProxy::start(upstream).await?;
        assert_eq!(proxy.upstream(), upstream);

        let mut client = TcpStream::connect(proxy.addr()).await?;
        round_trip(&mut client, b"ping").await?;
        round_trip(&mut client, b"pong").await?;
        assert_eq!(proxy.connections_accepted(), 1);
        Ok(())
    }

    /// Disabling cuts live connections and closes new ones at once;
    /// re-enabling relays again.
    #[tokio::test]
    async fn a_disabled_proxy_closes_connections_until_enabled() -> anyhow::Result<()> {
        let upstream = echo_server().await?;
        let proxy = TcpProxy::start(upstream).await?;
        let mut live = TcpStream::connect(proxy.addr()).await?;
        round_trip(&mut live, b"before").await?;

        proxy.set_enabled(false);
        assert!(is_closed(&mut live).await, "live connection should be cut");
        let mut refused = TcpStream::connect(proxy.addr()).await?;
        assert!(
            is_closed(&mut refused).await,
            "new connection should be closed"
        );

        proxy.set_enabled(true);
        let mut fresh = TcpStream::connect(proxy.addr()).await?;
        round_trip(&mut fresh, b"after").await?;
        assert_eq!(proxy.connections_accepted(), 3);
        Ok(())
    }

    /// `cut_all` closes every live connection but the proxy keeps relaying.
    #[tokio::test]
    async fn cut_all_closes_live_connections_and_keeps_accepting() -> anyhow::Result<()> {
        let upstream = echo_server().await?;
        let proxy = TcpProxy::start(upstream).await?;
        let mut first = TcpStream::connect(proxy.addr()).await?;
        let mut second = TcpStream::connect(proxy.addr()).await?;
        round_trip(&mut first, b"one").await?;
        round_trip(&mut second, b"two").await?;

        proxy.cut_all();
        assert!(
            is_closed(&mut first).await,
            "first connection should be cut"
        );
        assert!(
            is_closed(&mut second).await,
            "second connection should be cut"
        );

        let mut reconnected = TcpStream::connect(proxy.addr()).await?;
        round_trip(&mut reconnected, b"three").await?;
        Ok(())
    }

    /// An unreachable upstream closes the client at once instead of hanging.
    #[tokio::test]
    async fn an_unreachable_upstream_closes_the_client() -> anyhow::Result<()> {
        // Bind and drop a listener to get a port on which nothing listens.
        let vacant = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await?
            .local_addr()?;
        let proxy = TcpProxy::start(vacant).await?;
        let mut client = TcpStream::connect(proxy.addr()).await?;
        assert!(is_closed(&mut client).await);
        Ok(())
    }

    /// Dropping the proxy cuts the connections it carries.
    #[tokio::test]
    async fn dropping_the_proxy_cuts_its_connections() -> anyhow::Result<()> {
        let upstream = echo_server().await?;
        let proxy = TcpProxy::start(upstream).await?;
        let mut client = TcpStream::connect(proxy.addr()).await?;
        round_trip(&mut client, b"hello").await?;
        drop(proxy);
        assert!(is_closed(&mut client).await);
        Ok(())
    }
}
