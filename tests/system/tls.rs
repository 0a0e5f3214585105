//! TLS with a private CA: the services reach RabbitMQ (`amqps://`), the SMTP server
//! (`smtps://`) and the OTLP receiver (`https://`) through TLS endpoints whose certificate
//! a CA of our own signed, trusted through `cacertfile=` in the URLs (and
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` for the span exporter); a certificate from another CA
//! is refused.
//!
//! Both CAs come from `deploy/tls/generate.sh`, the script the compose TLS stack uses,
//! so the test also shows that its certificates are ones rustls accepts.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use email::mailer::{Mailer, OutgoingMail};
use messaging::connection::BrokerConnection;
use system_tests::{
    defaults,
    eventually::PATIENCE,
    system::{Options, TestSystem, TestTls},
    tls_terminator::TlsTerminator,
};

use crate::catalog::workspace_root;

/// The whole flow over TLS: every service's broker connection, the email service's SMTP
/// connection and the span exports complete a handshake with the test CA's certificate;
/// the sign-up is mailed and profiled, and its trace arrives, as usual. Then a client that trusts that CA is shown a
/// certificate from another CA, by the broker's and by the SMTP server's endpoint, and
/// refuses both.
#[tokio::test(flavor = "multi_thread")]
async fn the_services_talk_tls_with_a_private_ca_and_refuse_a_certificate_from_another() {
    let trusted = Ca::generate("trusted");
    let system = TestSystem::start_with(Options {
        tls: Some(trusted.files()),
        ..Options::default()
    })
    .await;
    system.sign_up_and_wait("tls@example.org", "Over TLS").await;
    let services = ["registration", "email", "profile"];
    let spans = system
        .otlp
        .wait_for(
            "spans from every service, exported over https",
            |spans| {
                services
                    .iter()
                    .all(|service| spans.iter().any(|span| span.service_name == *service))
            },
            PATIENCE,
        )
        .await;
    let handshakes = system.tls_handshakes();
    println!(
        "TLS handshakes: {handshakes:?}; {} spans arrived over https",
        spans.len()
    );
    assert!(
        handshakes.amqp >= 3,
        "each service connected to the broker over TLS: {handshakes:?}"
    );
    assert!(
        handshakes.smtp >= 1,
        "the welcome mail went over TLS: {handshakes:?}"
    );
    assert!(
        handshakes.otlp >= 1,
        "spans were exported over https: {handshakes:?}"
    );

    let stranger = Ca::generate("stranger");
    let foreign = stranger.files();
    let broker = TlsTerminator::start(
        defaults::AMQP_ADDR.parse().expect("an address"),
        &foreign.cert,
        &foreign.key,
    )
    .await
    .expect("a TLS endpoint with the other CA's certificate");
    let url = format!(
        "amqps://guest:guest@localhost:{}/%2f?cacertfile={}",
        broker.port(),
        trusted.files().ca.display()
    );
    let refused = BrokerConnection::open(&url, "tls test")
        .await
        .expect_err("a certificate from another CA is refused");
    println!("broker with another CA's certificate: {refused}");
    assert_eq!(broker.handshakes(), 0, "no TLS session was established");

    let mail_server = TlsTerminator::start(system.smtp.addr(), &foreign.cert, &foreign.key)
        .await
        .expect("a TLS endpoint with the other CA's certificate");
    let mailer = Mailer::new(
        &format!(
            "smtps://localhost:{}?cacertfile={}",
            mail_server.port(),
            trusted.files().ca.display()
        ),
        "Sign-up demo <welcome@example.org>",
        1,
    )
    .expect("the URL parses and the CA file reads");
    let refused = mailer
        .send(&OutgoingMail::welcome(
            uuid::Uuid::new_v4(),
            "refused@example.org",
            "Refused",
        ))
        .await
        .expect_err("a certificate from another CA is refused");
    println!("SMTP server with another CA's certificate: {refused}");
    assert_eq!(
        mail_server.handshakes(),
        0,
        "no TLS session was established"
    );
}

/// A CA and a `localhost` server certificate, made by `deploy/tls/generate.sh` in a
/// directory removed on drop.
struct Ca {
    directory: PathBuf,
}

impl Ca {
    fn generate(name: &str) -> Self {
        let directory = std::env::temp_dir().join(format!(
            "signup-tls-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let script = workspace_root().join("deploy/tls/generate.sh");
        let output = Command::new("sh")
            .arg(&script)
            .arg(&directory)
            .args(["localhost", "127.0.0.1"])
            .output()
            .expect("sh runs deploy/tls/generate.sh (it needs openssl)");
        assert!(
            output.status.success(),
            "generate.sh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self { directory }
    }

    fn path(&self, file: &str) -> PathBuf {
        Path::new(&self.directory).join(file)
    }

    fn files(&self) -> TestTls {
        TestTls {
            ca: self.path("ca.pem"),
            cert: self.path("server.pem"),
            key: self.path("server.key"),
        }
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}
