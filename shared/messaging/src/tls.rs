//! TLS settings carried in the AMQP URL, under the names RabbitMQ's own URI query
//! parameters give them: `amqps://user@broker:5671/%2f?cacertfile=/run/secrets/ca.pem`
//! trusts a private CA (besides the public roots), and `certfile` with `keyfile` present a
//! client certificate (PEM). One URL then says everything about the connection, as it does
//! for RabbitMQ's other clients, and no setting has to travel beside it.
//!
//! The files are read at every connect, so a renewed certificate is picked up at the next
//! reconnect without a restart.

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use url::Url;

use crate::MessagingError;

/// The CA certificates (PEM) to trust besides the public roots.
const CA_FILE: &str = "cacertfile";
/// The client certificate chain (PEM) to present.
const CERT_FILE: &str = "certfile";
/// The client certificate's private key (PEM, PKCS#8).
const KEY_FILE: &str = "keyfile";

/// Where and how to connect: the URL lapin is given (without the TLS parameters, which it
/// does not know) and the TLS configuration they describe.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The URL without `cacertfile`, `certfile` and `keyfile`.
    pub(crate) url: String,
    /// Empty (public roots, no client certificate) unless the URL asked for more.
    pub(crate) tls: OwnedTLSConfig,
}

/// Splits `url` into the URL for lapin and its TLS configuration, reading the files it
/// names. An unreadable file or half a client certificate is an error that names the
/// parameter (the URL itself is not repeated: it may hold a password).
pub(crate) fn endpoint(url: &str) -> Result<Endpoint, MessagingError> {
    let mut parsed = Url::parse(url)
        .map_err(|error| MessagingError::Tls(format!("the AMQP URL does not parse: {error}")))?;
    let mut ca_file = None;
    let mut cert_file = None;
    let mut key_file = None;
    let mut kept = Vec::new();
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            CA_FILE => ca_file = Some(value.into_owned()),
            CERT_FILE => cert_file = Some(value.into_owned()),
            KEY_FILE => key_file = Some(value.into_owned()),
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    if ca_file.is_none() && cert_file.is_none() && key_file.is_none() {
        return Ok(Endpoint {
            url: url.to_owned(),
            tls: OwnedTLSConfig::default(),
        });
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    let cert_chain = ca_file.map(|path| read(CA_FILE, &path)).transpose()?;
    let identity = match (cert_file, key_file) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: read(CERT_FILE, &cert)?.into_bytes(),
            key: read(KEY_FILE, &key)?.into_bytes(),
        }),
        (None, None) => None,
        _ => {
            return Err(MessagingError::Tls(format!(
                "a client certificate needs both `{CERT_FILE}` and `{KEY_FILE}`"
            )));
        }
    };
    Ok(Endpoint {
        url: parsed.into(),
        tls: OwnedTLSConfig {
            identity,
            cert_chain,
        },
    })
}

/// The content of the file that parameter `name` points at.
fn read(name: &str, path: &str) -> Result<String, MessagingError> {
    std::fs::read_to_string(path)
        .map_err(|error| MessagingError::Tls(format!("`{name}` {path}: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_tls_parameters_is_passed_on_as_it_is() {
        let endpoint =
            endpoint("amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=10").expect("a plain URL");
        assert_eq!(
            endpoint.url,
            "amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=10"
        );
        assert_eq!(endpoint.tls, OwnedTLSConfig::default());
    }

    #[test]
    fn the_tls_parameters_become_the_tls_configuration_and_leave_the_url() {
        let directory = std::env::temp_dir().join(format!("messaging-tls-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("a temporary directory");
        let (ca, cert, key) = (
            directory.join("ca.pem"),
            directory.join("client.pem"),
            directory.join("client.key"),
        );
        std::fs::write(&ca, "CA").expect("written");
        std::fs::write(&cert, "CERT").expect("written");
        std::fs::write(&key, "KEY").expect("written");
        let url = format!(
            "amqps://email:secret@rabbitmq:5671/%2f?cacertfile={}&heartbeat=10&certfile={}&keyfile={}",
            ca.display(),
            cert.display(),
            key.display()
        );
        let endpoint = endpoint(&url).expect("readable files");
        assert_eq!(
            endpoint.url,
            "amqps://email:secret@rabbitmq:5671/%2f?heartbeat=10"
        );
        assert_eq!(endpoint.tls.cert_chain.as_deref(), Some("CA"));
        assert_eq!(
            endpoint.tls.identity,
            Some(OwnedIdentity::PKCS8 {
                pem: b"CERT".to_vec(),
                key: b"KEY".to_vec()
            })
        );
        std::fs::remove_dir_all(directory).ok();
    }

    #[test]
    fn a_missing_file_or_half_a_client_certificate_is_refused_without_the_password() {
        let missing = endpoint("amqps://email:hunter2@rabbitmq/%2f?cacertfile=/nonexistent/ca.pem")
            .expect_err("no such file");
        assert!(
            missing
                .to_string()
                .contains("`cacertfile` /nonexistent/ca.pem")
        );
        assert!(!missing.to_string().contains("hunter2"));
        let half = endpoint("amqps://email:hunter2@rabbitmq/%2f?certfile=/etc/hostname")
            .expect_err("no key");
        assert!(half.to_string().contains("needs both"), "{half}");
    }
}
