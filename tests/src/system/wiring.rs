//! How the services are wired to the servers they use: the proxies a test asked for and
//! the environment each process gets.
//!
//! Kept apart from starting processes because it is pure configuration: which URL a
//! service gets depends only on the options, the names and the proxies, and a restart
//! reuses the environment computed here.

use crate::{
    defaults, otlp_sink::OtlpSink, smtp_sink::SmtpSink, tcp_proxy::TcpProxy,
    tls_terminator::TlsTerminator,
};

use super::{
    options::{CONSUMER_PREFETCH, DATABASE_POOL, Link, Options, Service, TestTls},
    topology::Topology,
};

/// The proxies [`Options`] asked for, one per service and link, so a test can cut one
/// service's path to one server without touching the others; and the TLS endpoints in
/// front of the broker and the SMTP server, if [`Options::tls`] asked for them.
#[derive(Debug, Default)]
pub(super) struct Proxies {
    cuttable: Vec<(Service, Link, TcpProxy)>,
    tls: Option<TlsEndpoints>,
}

/// TLS in front of RabbitMQ and in front of the SMTP server, and the CA to trust.
#[derive(Debug)]
pub(super) struct TlsEndpoints {
    /// The files the endpoints were started with.
    pub(super) files: TestTls,
    /// In front of the local RabbitMQ, for every service.
    pub(super) amqp: TlsTerminator,
    /// In front of the test's SMTP server, for the email service.
    pub(super) smtp: TlsTerminator,
    /// In front of the test's OTLP receiver, for every service's span export.
    pub(super) otlp: TlsTerminator,
}

impl Proxies {
    /// Starts one proxy for every service and link the options want proxied; the SMTP
    /// link exists for the email service only.
    pub(super) async fn start(options: &Options, smtp: &SmtpSink, otlp: &OtlpSink) -> Self {
        let mut proxies = Vec::new();
        for service in Service::ALL {
            let links = [
                (
                    Link::Amqp,
                    options.proxy_amqp,
                    defaults::AMQP_ADDR.to_owned(),
                ),
                (
                    Link::Postgres,
                    options.proxy_postgres,
                    defaults::POSTGRES_ADDR.to_owned(),
                ),
                (
                    Link::Smtp,
                    options.proxy_smtp && service == Service::Email,
                    smtp.addr().to_string(),
                ),
            ];
            for (link, wanted, upstream) in links {
                if wanted {
                    let upstream = upstream.parse().expect("a socket address");
                    let proxy = TcpProxy::start(upstream).await.expect("a proxy starts");
                    proxies.push((service, link, proxy));
                }
            }
        }
        let tls = match &options.tls {
            Some(files) => {
                let terminator = |upstream: String| {
                    let upstream = upstream.parse().expect("a socket address");
                    TlsTerminator::start(upstream, &files.cert, &files.key)
                };
                Some(TlsEndpoints {
                    files: files.clone(),
                    amqp: terminator(defaults::AMQP_ADDR.to_owned())
                        .await
                        .expect("the AMQP TLS endpoint starts"),
                    smtp: terminator(smtp.addr().to_string())
                        .await
                        .expect("the SMTP TLS endpoint starts"),
                    otlp: terminator(otlp.addr().to_string())
                        .await
                        .expect("the OTLP TLS endpoint starts"),
                })
            }
            None => None,
        };
        Self {
            cuttable: proxies,
            tls,
        }
    }

    /// The TLS endpoints, if the options asked for TLS.
    pub(super) fn tls(&self) -> Option<&TlsEndpoints> {
        self.tls.as_ref()
    }

    /// The proxy between `service` and the server behind `link`, if there is one.
    pub(super) fn find(&self, service: Service, link: Link) -> Option<&TcpProxy> {
        self.cuttable
            .iter()
            .find(|(s, l, _)| *s == service && *l == link)
            .map(|(_, _, proxy)| proxy)
    }
}

/// Everything a service's environment is computed from.
pub(super) struct Wiring<'a> {
    /// What the test asked for.
    pub(super) options: &'a Options,
    /// The system's names.
    pub(super) topology: &'a Topology,
    /// The proxies started for the options.
    pub(super) proxies: &'a Proxies,
    /// The SMTP server the email service sends to.
    pub(super) smtp: &'a SmtpSink,
    /// The OTLP receiver every service exports to.
    pub(super) otlp: &'a OtlpSink,
}

impl Wiring<'_> {
    /// The environment of `service`'s process: its database, broker, SMTP server and
    /// OTLP receiver (through a proxy where asked), the system's names and retry
    /// schedule, and the test-sized pools.
    pub(super) fn environment(&self, service: Service) -> Vec<(String, String)> {
        let retry = self.topology.retry_schedule();
        let mut env: Vec<(String, String)> = [
            ("DATABASE_URL", self.database_url(service)),
            ("AMQP_URL", self.amqp_url(service)),
            ("TOPOLOGY_PREFIX", self.topology.prefix()),
            ("PII_KEYS", defaults::PII_KEYS.to_owned()),
            ("PII_LOOKUP_KEY", defaults::PII_LOOKUP_KEY.to_owned()),
            ("SMTP_URL", self.smtp_url(service)),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.otlp_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
            ("OTEL_SERVICE_NAME", service.name().to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("RUST_LOG", "info".to_owned()),
            ("RETRY_INITIAL_DELAY_MS", retry.initial_delay_ms.to_string()),
            ("RETRY_MAX_ATTEMPTS", retry.max_attempts.to_string()),
            ("OUTBOX_SWEEP_INTERVAL_MS", "500".to_owned()),
            // Every sign-up of a test comes from 127.0.0.1: one client, far over any
            // per-client limit. Registration's API tests test the limit.
            ("SIGN_UP_RATE_LIMIT_PER_SECOND", "0".to_owned()),
            // Both bound the connections a system takes from the shared PostgreSQL
            // (see MAX_CONCURRENT_SYSTEMS).
            ("DATABASE_MAX_CONNECTIONS", DATABASE_POOL.to_string()),
            ("CONSUMER_PREFETCH", CONSUMER_PREFETCH.to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        if let Some(tls) = self.proxies.tls() {
            // The span exporter trusts this CA file instead of the public roots.
            env.push((
                "OTEL_EXPORTER_OTLP_CERTIFICATE".to_owned(),
                tls.files.ca.display().to_string(),
            ));
        }
        env.extend(self.options.extra_env.iter().cloned());
        env
    }

    fn otlp_endpoint(&self) -> String {
        match self.proxies.tls() {
            Some(tls) => format!("https://localhost:{}", tls.otlp.port()),
            None => self.otlp.endpoint(),
        }
    }

    fn amqp_url(&self, service: Service) -> String {
        if let Some(proxy) = self.proxies.find(service, Link::Amqp) {
            return format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port());
        }
        if let Some(tls) = self.proxies.tls() {
            return format!(
                "amqps://guest:guest@localhost:{}/%2f?cacertfile={}",
                tls.amqp.port(),
                tls.files.ca.display()
            );
        }
        chosen(&self.options.amqp_urls, service).unwrap_or_else(|| defaults::AMQP_URL.to_owned())
    }

    fn database_url(&self, service: Service) -> String {
        if let Some(proxy) = self.proxies.find(service, Link::Postgres) {
            return format!(
                "postgres://postgres@127.0.0.1:{}/{}",
                proxy.port(),
                self.topology.database(service)
            );
        }
        chosen(&self.options.database_urls, service)
            .unwrap_or_else(|| self.topology.database_url(service))
    }

    fn smtp_url(&self, service: Service) -> String {
        if let Some(proxy) = self.proxies.find(service, Link::Smtp) {
            return format!("smtp://127.0.0.1:{}", proxy.port());
        }
        match self.proxies.tls() {
            Some(tls) => format!(
                "smtps://localhost:{}?cacertfile={}",
                tls.smtp.port(),
                tls.files.ca.display()
            ),
            None => self.smtp.url(),
        }
    }
}

/// The URL a test chose for `service`, if it chose one.
fn chosen(urls: &[(Service, String)], service: Service) -> Option<String> {
    urls.iter()
        .find(|(chosen, _)| *chosen == service)
        .map(|(_, url)| url.clone())
}
