//! The span exporter's HTTP client: `http://` and `https://` to an OTLP endpoint (Jaeger,
//! a collector, a managed backend).
//!
//! Why our own: the batch exporter sends from a thread of its own with no async runtime,
//! so its client must block; the exporter's built-in blocking client is reqwest's, whose
//! TLS would need a crypto provider chosen for the whole workspace (and every test that
//! builds a reqwest client). ureq blocks by design and brings rustls on ring, the provider
//! every other TLS client here uses.
//!
//! TLS settings are the OpenTelemetry specification's variables:
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` (a PEM file of CAs to trust instead of the public
//! roots), `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and `OTEL_EXPORTER_OTLP_CLIENT_KEY`
//! (a client certificate), and `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds, 10 000 by
//! default) bounds each export.

use std::{io::Read, sync::Arc, time::Duration};

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::TelemetryError;

/// The specification's default export timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response body read back (OTLP answers are a few bytes; a misdirected endpoint
/// could send anything).
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// A blocking HTTP(S) client for the exporter's requests.
#[derive(Debug)]
pub(crate) struct OtlpHttpClient {
    agent: ureq::Agent,
}

impl OtlpHttpClient {
    /// The client the `OTEL_EXPORTER_OTLP_*` variables describe; a certificate file that
    /// cannot be read or parsed is an error at start, not a silent plain connection.
    pub(crate) fn from_env() -> Result<Self, TelemetryError> {
        let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let mut tls = TlsConfig::builder();
        if let Some(path) = variable("OTEL_EXPORTER_OTLP_CERTIFICATE") {
            let certificates = certificates(&read(&path)?, &path)?;
            tls = tls.root_certs(RootCerts::Specific(Arc::new(certificates)));
        }
        match (
            variable("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
            variable("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        ) {
            (Some(cert), Some(key)) => {
                let chain = certificates(&read(&cert)?, &cert)?;
                let key =
                    PrivateKey::from_pem(&read(&key)?).map_err(|error| tls_error(&key, &error))?;
                tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
            }
            (None, None) => {}
            _ => {
                return Err(TelemetryError::OtlpTls(
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY go together"
                        .to_owned(),
                ));
            }
        }
        let timeout = variable("OTEL_EXPORTER_OTLP_TIMEOUT")
            .and_then(|millis| millis.parse().ok())
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // The exporter reads the status itself (and retries what it may).
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Self { agent })
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpHttpClient {
    /// Blocks the calling thread: the batch exporter's own, which has nothing else to do
    /// meanwhile.
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = request.map(|body| body.to_vec());
        let response = self.agent.run(request)?;
        let (parts, body) = response.into_parts();
        let mut bytes = Vec::new();
        body.into_reader()
            .take(MAX_RESPONSE_BYTES)
            .read_to_end(&mut bytes)?;
        Ok(Response::from_parts(parts, Bytes::from(bytes)))
    }
}

/// Every certificate of a PEM file.
fn certificates(pem: &[u8], path: &str) -> Result<Vec<Certificate<'static>>, TelemetryError> {
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        if let PemItem::Certificate(certificate) = item.map_err(|error| tls_error(path, &error))? {
            certificates.push(certificate);
        }
    }
    if certificates.is_empty() {
        return Err(TelemetryError::OtlpTls(format!("{path}: no certificate")));
    }
    Ok(certificates)
}

fn read(path: &str) -> Result<Vec<u8>, TelemetryError> {
    std::fs::read(path).map_err(|error| tls_error(path, &error))
}

fn tls_error(path: &str, error: &dyn std::fmt::Display) -> TelemetryError {
    TelemetryError::OtlpTls(format!("{path}: {error}"))
}
