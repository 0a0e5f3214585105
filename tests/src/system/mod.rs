//! The three services wired together for one test: the [`TestSystem`] façade.
//!
//! A test starts a system, drives it through the typed clients
//! ([`TestSystem::registration`], [`TestSystem::profiles`], [`TestSystem::emails`],
//! [`TestSystem::ops`]), breaks it through [`TestSystem::proxy`] and
//! [`TestSystem::processes`], and looks at what happened through
//! [`TestSystem::effects`]. Each of those jobs lives in a module of its own:
//!
//! - `options`: what a test can choose before the start, and the names of things;
//! - `topology`: the broker and database names one system owns;
//! - `wiring`: the proxies and each process's environment;
//! - `processes`: starting, stopping and restarting the service processes;
//! - `api` and `ops`: HTTP clients for the services' APIs and operational endpoints;
//! - `tools`: the services' command-line tools;
//! - `cleanup`: removing queues and databases when the system is dropped.

mod api;
pub(crate) mod cleanup;
mod ops;
mod options;
mod processes;
mod tools;
mod topology;
mod wiring;

use std::path::Path;

use tokio::time::Instant;

use self::wiring::{Proxies, Wiring};
pub use self::{
    api::{Emails, Endpoint, Profiles, Registration, trace_id, traceresponse},
    cleanup::block_on_own_thread,
    ops::Ops,
    options::{
        CONSUMER_PREFETCH, DATABASE_POOL, Link, Options, RETRY_INITIAL_DELAY_MS,
        RETRY_MAX_ATTEMPTS, RetrySchedule, Service, TestTls,
    },
    processes::Processes,
    tools::Tool,
    topology::{CONSUMER_QUEUES, Topology, USER_DELETED_QUEUES, USER_REGISTERED_QUEUES},
};
use crate::{
    binaries,
    burst::{Burst, BurstPlan, BurstTarget},
    effects::{EffectsProbe, Markers},
    otlp_sink::OtlpSink,
    smtp_sink::SmtpSink,
    tcp_proxy::TcpProxy,
};

/// How many test systems may run at once in one test process. All tests share one
/// PostgreSQL, which allows 100 connections: a system takes up to
/// 3 × [`DATABASE_POOL`] for its services plus a few for the harness, about 20, so two
/// fit with room to spare (with the bench or a second test run beside them). On a
/// machine with more cores than that, the other tests wait for a slot instead of failing
/// to connect.
const MAX_CONCURRENT_SYSTEMS: usize = 2;

/// The slots of [`MAX_CONCURRENT_SYSTEMS`]. Tokio's semaphore is not tied to a runtime,
/// so the tests' separate runtimes can share it.
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_SYSTEMS);

/// TLS handshakes completed by each TLS endpoint of a system with `Options::tls`.
#[derive(Debug, Clone, Copy)]
pub struct TlsHandshakes {
    /// With the broker's endpoint: one per broker connection.
    pub amqp: u64,
    /// With the SMTP server's endpoint.
    pub smtp: u64,
    /// With the OTLP receiver's endpoint (span exports).
    pub otlp: u64,
}

/// The three services running for one test, with their own databases, broker names, SMTP
/// server and OTLP receiver. Dropping it stops the processes and removes the databases,
/// queues and exchange.
#[derive(Debug)]
pub struct TestSystem {
    /// Receives the welcome mails; tests also use it to make addresses fail.
    pub smtp: SmtpSink,
    /// Receives the spans of all three services.
    pub otlp: OtlpSink,
    /// The client behind every typed HTTP helper.
    http: reqwest::Client,
    /// The names this system owns.
    topology: Topology,
    /// Every process started.
    processes: Processes,
    /// The proxies [`Options`] asked for.
    proxies: Proxies,
    /// The marker sign-ups made so far, which counting leaves out.
    markers: Markers,
    /// When the system was asked for, for the time a fault test reports.
    started: Instant,
    /// This system's slot among [`MAX_CONCURRENT_SYSTEMS`]; released when the system is
    /// dropped, after its processes are gone and its databases dropped.
    _slot: tokio::sync::SemaphorePermit<'static>,
}

impl TestSystem {
    /// Starts the three services with default options and waits until all are ready.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Starts the three services with `options` and waits until all are ready.
    pub async fn start_with(options: Options) -> Self {
        let started = Instant::now();
        let slot = RUNNING
            .acquire()
            .await
            .expect("the semaphore is static and never closed");
        let topology = options
            .topology
            .clone()
            .unwrap_or_else(|| Topology::new(options.retry_schedule()));
        let directory = binaries::directory().await;
        let log_dir = directory.join("system-tests").join(topology.id());
        let smtp = SmtpSink::start().await.expect("the SMTP sink starts");
        let otlp = OtlpSink::start().await.expect("the OTLP sink starts");
        let proxies = Proxies::start(&options, &smtp, &otlp).await;
        let http = reqwest::Client::new();
        let mut processes = Processes::new(directory, log_dir, http.clone());
        let wiring = Wiring {
            options: &options,
            topology: &topology,
            proxies: &proxies,
            smtp: &smtp,
            otlp: &otlp,
        };
        for service in Service::ALL {
            processes.spawn(service, wiring.environment(service));
        }
        for service in Service::ALL {
            processes.wait_until_ready(service, 0).await;
        }
        Self {
            smtp,
            otlp,
            http,
            topology,
            processes,
            proxies,
            markers: Markers::default(),
            started,
            _slot: slot,
        }
    }

    /// Registration's API, on its first instance.
    pub fn registration(&self) -> Registration<'_> {
        Registration(self.endpoint(Service::Registration, 0))
    }

    /// Registration's API on instance `number` (0 is [`TestSystem::registration`]'s), for
    /// tests that run several and must say which one a request goes to: a sign-up through
    /// one and its deletion through another put the two events on different relays.
    pub fn registration_of(&self, number: usize) -> Registration<'_> {
        Registration(self.endpoint(Service::Registration, number))
    }

    /// The profile service's API, on its first instance.
    pub fn profiles(&self) -> Profiles<'_> {
        Profiles(self.endpoint(Service::Profile, 0))
    }

    /// The email service's API, on its first instance.
    pub fn emails(&self) -> Emails<'_> {
        Emails(self.endpoint(Service::Email, 0))
    }

    /// Signs a user up and waits until both consumers have handled the event: the
    /// profile is there and the welcome mail is recorded `sent` (so the SMTP sink has
    /// it). Returns the user id. For tests that need a user to exist everywhere before
    /// they do what they are about.
    pub async fn sign_up_and_wait(&self, email: &str, display_name: &str) -> String {
        let user_id = self.registration().sign_up_ok(email, display_name).await;
        self.profiles().wait_for(&user_id).await;
        self.emails().wait_for_sent(email).await;
        user_id
    }

    /// The probes and metrics of `service`'s first instance.
    pub fn ops(&self, service: Service) -> Ops<'_> {
        self.ops_of(service, 0)
    }

    /// The probes and metrics of instance `number` of `service`.
    pub fn ops_of(&self, service: Service, number: usize) -> Ops<'_> {
        Ops::new(service, self.endpoint(service, number))
    }

    /// Counting what the system did: its databases, the mails, the queues.
    pub fn effects(&self) -> EffectsProbe<'_> {
        EffectsProbe::new(self)
    }

    /// `service`'s command-line tool, with the service's configuration.
    pub fn tool(&self, service: Service) -> Tool {
        Tool::new(
            service,
            self.processes.binary(service),
            self.processes.env(service),
        )
    }

    /// The exchange, queue and database names this system owns.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The consumers' retry schedule in this system.
    pub fn retry_schedule(&self) -> RetrySchedule {
        self.topology.retry_schedule()
    }

    /// The service processes, for killing, stopping, restarting and adding instances.
    pub fn processes(&mut self) -> &mut Processes {
        &mut self.processes
    }

    /// The proxy between `service` and the server behind `link`, for cutting it; panics
    /// unless [`Options`] asked for it.
    pub fn proxy(&self, service: Service, link: Link) -> &TcpProxy {
        self.proxies.find(service, link).unwrap_or_else(|| {
            panic!(
                "no {link:?} proxy for {}: set it in Options",
                service.name()
            )
        })
    }

    /// How many TLS handshakes the broker's, the SMTP server's and the OTLP receiver's
    /// TLS endpoints completed (`Options::tls`).
    pub fn tls_handshakes(&self) -> TlsHandshakes {
        let tls = self
            .proxies
            .tls()
            .expect("no TLS endpoints: set Options::tls");
        TlsHandshakes {
            amqp: tls.amqp.handshakes(),
            smtp: tls.smtp.handshakes(),
            otlp: tls.otlp.handshakes(),
        }
    }

    /// What a sign-up burst needs to run on its own task while the test breaks things:
    /// an HTTP client and the base URL of every registration instance.
    pub fn burst_target(&self) -> BurstTarget {
        BurstTarget::new(self.processes.base_urls(Service::Registration))
    }

    /// Every instance's base URL, for the load generator ([`crate::load::run`]).
    pub fn load_targets(&self) -> crate::load::Targets {
        crate::load::Targets {
            registrations: self.processes.base_urls(Service::Registration),
            profiles: self.processes.base_urls(Service::Profile),
            emails: self.processes.base_urls(Service::Email),
        }
    }

    /// Starts a [`BurstPlan::standard`] burst against every registration instance.
    pub fn start_burst(&self) -> Burst {
        Burst::start(self.burst_target(), BurstPlan::standard())
    }

    /// The directory the service logs of this system go to (kept if the test fails).
    pub fn log_dir(&self) -> &Path {
        self.processes.log_dir()
    }

    /// When [`TestSystem::start_with`] was called.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The marker sign-ups made so far (see [`EffectsProbe::pass_marker`]).
    pub(crate) fn markers(&self) -> &Markers {
        &self.markers
    }

    fn endpoint(&self, service: Service, number: usize) -> Endpoint<'_> {
        Endpoint::new(&self.http, self.processes.base_url(service, number))
    }
}

impl Drop for TestSystem {
    fn drop(&mut self) {
        // Kill first, so nothing re-declares what is being deleted.
        self.processes.kill_all();
        cleanup::remove_everything(self.topology.clone());
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(self.processes.log_dir());
        }
    }
}
