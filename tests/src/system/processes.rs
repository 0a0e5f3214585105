//! Starting, stopping and restarting the service processes of one system.
//!
//! Each process is kept with the environment it was started with, so that a restart or
//! a second instance is the same configuration again, and with its number, so that a
//! test can address "the second email consumer".

use std::{
    fmt,
    path::{Path, PathBuf},
    process::ExitStatus,
    time::Duration,
};

use reqwest::StatusCode;

use crate::{
    eventually::eventually,
    process::{ServiceProcess, free_port},
};

use super::options::Service;

/// How long a service may take to become ready: a cold debug binary migrating its
/// database on a busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One running (or stopped) process of a service, with what it takes to start it again.
#[derive(Debug)]
struct Instance {
    /// Which service it is.
    service: Service,
    /// 0 for the first instance of its service, 1 for the second, …
    number: usize,
    /// Its environment, kept so that a restart is the same process again.
    env: Vec<(String, String)>,
    /// The process; after a kill or a clean exit it stays here until restarted.
    process: ServiceProcess,
}

/// Every service process of one system, first instances first. Dropping it kills them
/// all ([`ServiceProcess`] kills on drop).
#[derive(Debug)]
pub struct Processes {
    /// In start order.
    instances: Vec<Instance>,
    /// Where the service binaries are.
    binaries: PathBuf,
    /// Where their logs go.
    log_dir: PathBuf,
    /// For the readiness probe.
    http: reqwest::Client,
}

impl Processes {
    /// No processes yet; binaries from `binaries`, logs to `log_dir`.
    pub(super) fn new(binaries: PathBuf, log_dir: PathBuf, http: reqwest::Client) -> Self {
        Self {
            instances: Vec::new(),
            binaries,
            log_dir,
            http,
        }
    }

    /// Starts the next instance of `service` with `env` on a free port, without
    /// waiting for it; returns its number.
    pub(super) fn spawn(&mut self, service: Service, env: Vec<(String, String)>) -> usize {
        let number = self
            .instances
            .iter()
            .filter(|instance| instance.service == service)
            .count();
        let process = self.spawn_process(service, number, free_port(), &env);
        self.instances.push(Instance {
            service,
            number,
            env,
            process,
        });
        number
    }

    /// Starts one more process of `service` with the same environment as the first (same
    /// database, same queues, same proxies) on a port of its own, waits until it is
    /// ready, and returns its instance number for [`Processes::instance`].
    pub async fn add_instance(&mut self, service: Service) -> usize {
        let env = self.env(service).to_vec();
        let number = self.spawn(service, env);
        self.wait_until_ready(service, number).await;
        number
    }

    /// The (first) process of `service`.
    pub fn process(&mut self, service: Service) -> &mut ServiceProcess {
        self.instance(service, 0)
    }

    /// Instance `number` of `service` (0 is the one the system started with).
    pub fn instance(&mut self, service: Service, number: usize) -> &mut ServiceProcess {
        let index = self.index(service, number);
        &mut self.instances[index].process
    }

    /// SIGKILL to instance `number` of `service`: no drain, no ack, no flush.
    pub async fn kill(&mut self, service: Service, number: usize) {
        self.instance(service, number).kill().await;
    }

    /// SIGTERM to instance `number` of `service`; its exit status, or `None` if it was
    /// still running after `timeout`.
    pub async fn terminate(
        &mut self,
        service: Service,
        number: usize,
        timeout: Duration,
    ) -> Option<ExitStatus> {
        self.instance(service, number).terminate(timeout).await
    }

    /// SIGTERM to the first email and profile instances, each given 10 s to drain and
    /// exit: for a test that wants events to wait in the queues, unconsumed.
    pub async fn stop_consumers(&mut self) {
        for service in [Service::Email, Service::Profile] {
            let stopped = self.terminate(service, 0, Duration::from_secs(10)).await;
            assert!(stopped.is_some(), "{} stops", service.name());
        }
    }

    /// Starts instance `number` of `service` again, after a kill or a clean exit: same
    /// environment, same port (so its URL is unchanged), log appended to. Waits until it
    /// is ready.
    pub async fn restart(&mut self, service: Service, number: usize) {
        let index = self.index(service, number);
        let instance = &mut self.instances[index];
        instance.process.kill().await;
        let port = instance.process.port();
        let env = instance.env.clone();
        let process = self.spawn_process(service, number, port, &env);
        self.instances[index].process = process;
        self.wait_until_ready(service, number).await;
    }

    /// [`Processes::restart`] with `overrides` replacing (or adding to) the instance's
    /// environment from now on, e.g. new `PII_KEYS` after a key rotation.
    pub async fn restart_with(
        &mut self,
        service: Service,
        number: usize,
        overrides: &[(&str, &str)],
    ) {
        let index = self.index(service, number);
        let env = &mut self.instances[index].env;
        for (key, value) in overrides {
            env.retain(|(existing, _)| existing != key);
            env.push(((*key).to_owned(), (*value).to_owned()));
        }
        self.restart(service, number).await;
    }

    /// Waits until instance `number` of `service` answers 200 on `/readyz`; fails the
    /// test with its log if it exits first or is not ready in time.
    pub async fn wait_until_ready(&mut self, service: Service, number: usize) {
        let url = format!("{}/readyz", self.base_url(service, number));
        let http = self.http.clone();
        let what = format!(
            "{} instance {number} to answer 200 on /readyz",
            service.name()
        );
        let process = self.instance(service, number);
        eventually(what, READY_TIMEOUT, async || {
            let answer = match http.get(&url).send().await {
                Ok(response) if response.status() == StatusCode::OK => return Ok(()),
                Ok(response) => response.status().to_string(),
                Err(error) => error.to_string(),
            };
            assert!(
                process.is_running(),
                "{} exited during start-up:\n{}",
                service.name(),
                process.log()
            );
            Err(NotReady {
                answer,
                log: process.log_path().to_owned(),
            })
        })
        .await;
    }

    /// `http://127.0.0.1:<port>` of instance `number` of `service`.
    pub fn base_url(&self, service: Service, number: usize) -> String {
        self.instances[self.index(service, number)]
            .process
            .base_url()
    }

    /// The base URLs of every instance of `service`, in instance order.
    pub fn base_urls(&self, service: Service) -> Vec<String> {
        self.instances
            .iter()
            .filter(|instance| instance.service == service)
            .map(|instance| instance.process.base_url())
            .collect()
    }

    /// The environment the first instance of `service` was started with.
    pub fn env(&self, service: Service) -> &[(String, String)] {
        &self.instances[self.index(service, 0)].env
    }

    /// The path of `service`'s binary.
    pub fn binary(&self, service: Service) -> PathBuf {
        self.binaries.join(service.name())
    }

    /// The directory the service logs of this system go to (kept if the test fails).
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// Kills every process now, so nothing re-declares what cleanup is deleting.
    pub(super) fn kill_all(&mut self) {
        self.instances.clear();
    }

    fn spawn_process(
        &self,
        service: Service,
        number: usize,
        port: u16,
        env: &[(String, String)],
    ) -> ServiceProcess {
        let log = if number == 0 {
            self.log_dir.join(format!("{}.log", service.name()))
        } else {
            self.log_dir
                .join(format!("{}-{}.log", service.name(), number + 1))
        };
        ServiceProcess::spawn_logging_to(&self.binary(service), service.name(), port, env, log)
            .expect("the service binary starts")
    }

    fn index(&self, service: Service, number: usize) -> usize {
        self.instances
            .iter()
            .position(|instance| instance.service == service && instance.number == number)
            .unwrap_or_else(|| panic!("no instance {number} of {}", service.name()))
    }
}

/// What a service that is not ready yet showed: its last `/readyz` answer and, read only
/// when the wait fails, its log.
struct NotReady {
    answer: String,
    log: PathBuf,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        write!(f, "/readyz answered {}; its log:\n{log}", self.answer)
    }
}
