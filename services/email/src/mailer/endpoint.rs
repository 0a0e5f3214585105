//! Where the SMTP server is and how to talk to it, parsed from `SMTP_URL`, and opening one
//! connection to it with `TCP_NODELAY` set.
//!
//! Why not lettre's own transport: it opens its sockets without `TCP_NODELAY`, and it
//! writes a mail's body and its closing `.` in two writes. Nagle's algorithm then holds the
//! `.` until the server acknowledges the body, which the server delays (delayed ACK) by
//! about 40 ms: every mail cost 40 ms or more on a fast network. Upstream fixed this after
//! 0.11.23; until a release has it, we open the socket ourselves and hand it to lettre's
//! SMTP client, which does everything else (EHLO, STARTTLS, AUTH, the mail transaction).

use std::time::Duration;

use lettre::transport::smtp::{
    authentication::{Credentials, DEFAULT_MECHANISMS},
    client::{AsyncSmtpConnection, Certificate, Identity, TlsParameters},
    extension::ClientId,
};
use percent_encoding::percent_decode_str;
use tokio::net::TcpStream;
use url::Url;

use super::{MailError, classify};

/// How long opening a connection (TCP, greeting, EHLO, TLS, AUTH) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the connection is secured, from the URL's scheme and `tls` parameter.
#[derive(Clone)]
enum Security {
    /// `smtp://host` : plain text (a local relay, Mailpit).
    Plain,
    /// `smtp://host?tls=required`: STARTTLS, or fail.
    StartTls(TlsParameters),
    /// `smtp://host?tls=opportunistic`: STARTTLS when the server offers it.
    Opportunistic(TlsParameters),
    /// `smtps://host`: TLS from the first byte.
    Implicit(TlsParameters),
}

/// An SMTP server and how to reach it.
#[derive(Clone)]
pub(super) struct SmtpEndpoint {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
}

impl std::fmt::Debug for SmtpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No credentials in logs.
        f.debug_struct("SmtpEndpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The TLS files an `SMTP_URL` names, read when the URL is parsed (at start).
struct TlsFiles {
    /// `cacertfile`: CA certificates to trust besides the public roots.
    ca: Option<String>,
    /// `certfile`: the client certificate chain.
    cert: Option<String>,
    /// `keyfile`: the client certificate's key.
    key: Option<String>,
}

impl TlsFiles {
    /// lettre's TLS parameters for `host` with these files.
    fn parameters(&self, host: &str) -> Result<TlsParameters, String> {
        let read = |name: &str, path: &str| {
            std::fs::read(path).map_err(|error| format!("`{name}` {path}: {error}"))
        };
        let mut builder = TlsParameters::builder(host.to_owned());
        if let Some(path) = &self.ca {
            for certificate in pem_certificates(&read("cacertfile", path)?) {
                let certificate = Certificate::from_pem(&certificate)
                    .map_err(|error| format!("`cacertfile` {path}: {error}"))?;
                builder = builder.add_root_certificate(certificate);
            }
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let identity = Identity::from_pem(&read("certfile", cert)?, &read("keyfile", key)?)
                    .map_err(|error| format!("`certfile`/`keyfile`: {error}"))?;
                builder = builder.identify_with(identity);
            }
            (None, None) => {}
            _ => return Err("a client certificate needs both `certfile` and `keyfile`".to_owned()),
        }
        builder.build().map_err(|error| error.to_string())
    }
}

/// Each `-----BEGIN CERTIFICATE-----` block of a PEM file on its own: lettre takes one
/// certificate at a time, and a CA file may hold several (a bundle, a rotation).
fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(pem);
    text.split_inclusive(END)
        .filter(|block| block.contains(END))
        .map(|block| block.trim_start().as_bytes().to_vec())
        .collect()
}

impl SmtpEndpoint {
    /// Parses `SMTP_URL` with lettre's rules: `smtp://[user:pass@]host[:port][?tls=required|opportunistic]`
    /// (port 25 plain, 587 with STARTTLS) or `smtps://[user:pass@]host[:port]` (465). With
    /// TLS, `cacertfile` trusts a private CA besides the public roots, and `certfile` with
    /// `keyfile` present a client certificate (PEM), as in the AMQP URL.
    pub(super) fn parse(smtp_url: &str) -> Result<Self, MailError> {
        let config = |reason: String| MailError::Config(format!("SMTP_URL: {reason}"));
        let url = Url::parse(smtp_url).map_err(|error| config(error.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| config("no host".to_owned()))?
            .to_owned();
        let parameter = |name: &str| {
            url.query_pairs()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        let tls_files = TlsFiles {
            ca: parameter("cacertfile"),
            cert: parameter("certfile"),
            key: parameter("keyfile"),
        };
        let tls = || tls_files.parameters(&host).map_err(config);
        let mode = parameter("tls");
        let (security, default_port) = match (url.scheme(), mode.as_deref()) {
            ("smtp", None) => (Security::Plain, 25),
            ("smtp", Some("required")) => (Security::StartTls(tls()?), 587),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic(tls()?), 587),
            ("smtps", _) => (Security::Implicit(tls()?), 465),
            (scheme, mode) => {
                return Err(config(format!(
                    "unknown scheme `{scheme}` or tls parameter `{mode:?}`"
                )));
            }
        };
        let decode = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
        let credentials = url
            .password()
            .map(|password| Credentials::new(decode(url.username()), decode(password)));
        Ok(Self {
            port: url.port().unwrap_or(default_port),
            host,
            security,
            credentials,
            hello: ClientId::default(),
        })
    }

    /// Opens a connection ready for mail transactions: connected, greeted, secured and
    /// authenticated as the URL says.
    pub(super) async fn connect(&self) -> Result<AsyncSmtpConnection, MailError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.open())
            .await
            .map_err(|_| {
                MailError::Transient("timed out connecting to the SMTP server".to_owned())
            })?
    }

    async fn open(&self) -> Result<AsyncSmtpConnection, MailError> {
        let mut connection = match &self.security {
            // lettre must open an implicit-TLS socket itself (TLS before the greeting), so
            // this one path still goes without TCP_NODELAY.
            Security::Implicit(tls) => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(CONNECT_TIMEOUT),
                &self.hello,
                Some(tls.clone()),
                None,
            )
            .await
            .map_err(classify)?,
            _ => {
                let tcp = TcpStream::connect((self.host.as_str(), self.port))
                    .await
                    .map_err(|error| MailError::Transient(format!("connection: {error}")))?;
                tcp.set_nodelay(true)
                    .map_err(|error| MailError::Transient(format!("TCP_NODELAY: {error}")))?;
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                    .await
                    .map_err(classify)?
            }
        };
        match &self.security {
            Security::StartTls(tls) => connection
                .starttls(tls.clone(), &self.hello)
                .await
                .map_err(classify)?,
            Security::Opportunistic(tls) if connection.can_starttls() => connection
                .starttls(tls.clone(), &self.hello)
                .await
                .map_err(classify)?,
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(classify)?;
        }
        Ok(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_and_tls_parameter_choose_the_security_and_default_port() {
        for (url, port) in [
            ("smtp://mail.example.org", 25),
            ("smtp://mail.example.org?tls=required", 587),
            ("smtp://mail.example.org?tls=opportunistic", 587),
            ("smtps://user:secret@mail.example.org", 465),
            ("smtp://127.0.0.1:1025", 1025),
        ] {
            let endpoint = SmtpEndpoint::parse(url).expect(url);
            assert_eq!(endpoint.port, port, "{url}");
        }
    }

    #[test]
    fn credentials_are_percent_decoded() {
        let endpoint = SmtpEndpoint::parse("smtps://ada%40example.org:p%2Bss@mail.example.org")
            .expect("valid");
        assert_eq!(
            endpoint.credentials,
            Some(Credentials::new(
                "ada@example.org".to_owned(),
                "p+ss".to_owned()
            ))
        );
    }

    #[test]
    fn an_unknown_scheme_is_a_configuration_error() {
        let error = SmtpEndpoint::parse("gopher://nope").expect_err("refused");
        assert!(matches!(error, MailError::Config(_)), "{error}");
    }
}
