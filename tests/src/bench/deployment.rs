//! The system as a user runs it, for the benchmark: the three release binaries with their
//! built-in defaults (pools, prefetch, logs at `info`, trace export on), the `smtp-sink`
//! and `otlp-sink` tools standing in for Mailpit and Jaeger, each its own process.
//!
//! Only what must differ from a user's run is set: each service's own database and a
//! topology prefix (so nothing collides with other work on the machine's broker and
//! database), the sinks' ports, and the retry schedule spelled out at its documented
//! default (so that cleanup knows the delay queues' names). Dropping it kills the
//! processes and deletes the queues, exchange and databases.

use std::{path::Path, path::PathBuf, process::Stdio, time::Duration};

use anyhow::Context;
use tokio::{
    process::{Child, Command},
    time::Instant,
};

use super::footprint::Counters;
use crate::{
    defaults,
    load::Targets,
    process::{ServiceProcess, free_port},
    system::{RetrySchedule, Service, Topology, cleanup},
};

/// How long a service may take to answer 200 on `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The services' documented retry default, spelled out (see the module comment).
const RETRY: RetrySchedule = RetrySchedule {
    initial_delay_ms: 1000,
    max_attempts: 6,
};

/// A process the benchmark watches: its name and pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Watched {
    /// `registration`, …, `smtp-sink`, `otlp-sink`.
    pub(super) name: String,
    /// Its pid.
    pub(super) pid: u32,
}

/// The running services and sinks.
#[derive(Debug)]
pub(super) struct Deployment {
    services: Vec<(Service, ServiceProcess)>,
    sinks: Vec<(&'static str, Child)>,
    topology: Topology,
    log_dir: PathBuf,
}

impl Deployment {
    /// Starts the sinks from the binaries in `tools` and `instances` of each service
    /// from those in `services` (usually the same folder), logging to `log_dir`, and
    /// waits until every service is ready.
    pub(super) async fn start(
        tools: &Path,
        services: &Path,
        log_dir: &Path,
        instances: usize,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(log_dir)?;
        let topology = Topology::new(RETRY);
        let mut deployment = Self {
            services: Vec::new(),
            sinks: Vec::new(),
            topology,
            log_dir: log_dir.to_owned(),
        };
        let smtp_port = free_port();
        let otlp_port = free_port();
        deployment.sink(tools, "smtp-sink", smtp_port, &["--quiet"])?;
        deployment.sink(tools, "otlp-sink", otlp_port, &[])?;
        for port in [smtp_port, otlp_port] {
            wait_for_port(port).await?;
        }
        for service in Service::ALL {
            let env = deployment.environment(service, smtp_port, otlp_port);
            let binary = services.join(service.name());
            for number in 0..instances.max(1) {
                let log = log_dir.join(format!("{}-{number}.log", service.name()));
                let process = ServiceProcess::spawn_logging_to(
                    &binary,
                    service.name(),
                    free_port(),
                    &env,
                    log,
                )
                .with_context(|| format!("starting {}", binary.display()))?;
                deployment.services.push((service, process));
            }
        }
        let http = reqwest::Client::new();
        for (service, process) in &mut deployment.services {
            let url = format!("{}/readyz", process.base_url());
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                let ready = http.get(&url).send().await;
                if ready.is_ok_and(|answer| answer.status().is_success()) {
                    break;
                }
                anyhow::ensure!(
                    process.is_running() && Instant::now() < deadline,
                    "{} did not become ready; its log: {}",
                    service.name(),
                    process.log_path().display()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(deployment)
    }

    /// Every instance's base URL for the load generator.
    pub(super) fn targets(&self) -> Targets {
        let urls = |wanted: Service| {
            self.services
                .iter()
                .filter(|(service, _)| *service == wanted)
                .map(|(_, process)| process.base_url())
                .collect()
        };
        Targets {
            registrations: urls(Service::Registration),
            profiles: urls(Service::Profile),
            emails: urls(Service::Email),
        }
    }

    /// Where the benchmark reads what a sign-up costs the broker and the database.
    pub(super) fn counters(&self) -> Counters {
        Counters {
            databases: Service::ALL
                .map(|service| (service, self.topology.database(service)))
                .to_vec(),
            urls: self
                .services
                .iter()
                .map(|(service, process)| (*service, process.base_url()))
                .collect(),
        }
    }

    /// The services, then the sinks, with their pids.
    pub(super) fn watched(&self) -> Vec<Watched> {
        let services = self
            .services
            .iter()
            .filter_map(|(service, process)| Some((service.name(), process.pid()?)));
        let sinks = self
            .sinks
            .iter()
            .filter_map(|(name, child)| Some((*name, child.id()?)));
        services
            .chain(sinks)
            .map(|(name, pid)| Watched {
                name: name.to_owned(),
                pid,
            })
            .collect()
    }

    /// Where the processes' logs are.
    pub(super) fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    fn sink(
        &mut self,
        binaries: &Path,
        name: &'static str,
        port: u16,
        args: &[&str],
    ) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.log_dir.join(format!("{name}.log")))?;
        let child = Command::new(binaries.join(name))
            .args(["--port", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.sinks.push((name, child));
        Ok(())
    }

    fn environment(&self, service: Service, smtp: u16, otlp: u16) -> Vec<(String, String)> {
        [
            ("DATABASE_URL", self.topology.database_url(service)),
            ("AMQP_URL", defaults::AMQP_URL.to_owned()),
            ("TOPOLOGY_PREFIX", self.topology.prefix()),
            ("PII_KEYS", defaults::PII_KEYS.to_owned()),
            ("PII_LOOKUP_KEY", defaults::PII_LOOKUP_KEY.to_owned()),
            ("SMTP_URL", format!("smtp://127.0.0.1:{smtp}")),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{otlp}"),
            ),
            ("OTEL_SERVICE_NAME", service.name().to_owned()),
            ("RETRY_INITIAL_DELAY_MS", RETRY.initial_delay_ms.to_string()),
            ("RETRY_MAX_ATTEMPTS", RETRY.max_attempts.to_string()),
            // The load comes from one address: the per-client limit would measure itself.
            ("SIGN_UP_RATE_LIMIT_PER_SECOND", "0".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        // Kill first, so nothing re-declares what is being deleted.
        self.services.clear();
        self.sinks.clear();
        cleanup::remove_everything(self.topology.clone());
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

/// Waits until something listens on `port` of 127.0.0.1.
async fn wait_for_port(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "nothing listens on port {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
