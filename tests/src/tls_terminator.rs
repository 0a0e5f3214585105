//! A TLS-terminating proxy: what a broker or mail server with TLS looks like to a service,
//! in front of the plain local RabbitMQ or the test's own SMTP server.
//!
//! It accepts TLS with a certificate the test chose (from `deploy/tls/generate.sh`),
//! then relays the decrypted bytes to its upstream over plain TCP. A service given
//! `amqps://localhost:PORT/…?cacertfile=ca.pem` thus speaks real TLS 1.3 to it, with the
//! certificate checked against that CA and the host name, as it would against a TLS
//! listener of RabbitMQ itself; a certificate from another CA is refused by the client.
//!
//! Implicit TLS only (`amqps://`, `smtps://`): STARTTLS would need the proxy to speak
//! SMTP.

use std::{
    io,
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, rustls};
use tokio_util::sync::CancellationToken;

/// A running terminator from `127.0.0.1:PORT` (TLS) to one upstream address (plain).
/// Dropping it stops accepting and ends every relayed connection.
#[derive(Debug)]
pub struct TlsTerminator {
    addr: SocketAddr,
    handshakes: Arc<AtomicU64>,
    shutdown: CancellationToken,
}

impl TlsTerminator {
    /// Listens on `127.0.0.1:0` with the certificate chain `cert` and key `key` (PEM
    /// files), relaying every connection whose handshake succeeds to `upstream`.
    ///
    /// # Errors
    ///
    /// When a file cannot be read or parsed, or the listener cannot be bound.
    pub async fn start(upstream: SocketAddr, cert: &Path, key: &Path) -> io::Result<Self> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(io::Error::other)?
            .collect::<Result<_, _>>()
            .map_err(io::Error::other)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(io::Error::other)?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(io::Error::other)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let handshakes = Arc::new(AtomicU64::new(0));
        let shutdown = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            acceptor,
            upstream,
            handshakes.clone(),
            shutdown.clone(),
        ));
        Ok(Self {
            addr,
            handshakes,
            shutdown,
        })
    }

    /// The port clients connect to (on `localhost`, the name the certificate holds).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many clients completed a TLS handshake: proof that the traffic went through
    /// TLS, and that the client accepted the certificate.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    upstream: SocketAddr,
    handshakes: Arc<AtomicU64>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        let Ok((client, _)) = accepted else { continue };
        let (acceptor, handshakes, shutdown) =
            (acceptor.clone(), handshakes.clone(), shutdown.clone());
        tokio::spawn(async move {
            // A refused handshake (the client does not trust the certificate) just ends
            // the connection: that refusal is what a test may be looking for.
            let Ok(mut client) = acceptor.accept(client).await else {
                return;
            };
            handshakes.fetch_add(1, Ordering::Relaxed);
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}
