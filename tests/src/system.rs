use std::{
    path::{Path, PathBuf},
    process::{ExitStatus, Output},
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool, postgres::PgPoolOptions};

use crate::{
    binaries,
    broker::Broker,
    burst::BurstTarget,
    defaults,
    otlp_sink::OtlpSink,
    process::{ServiceProcess, free_port},
    smtp_sink::SmtpSink,
    tcp_proxy::TcpProxy,
};

/// How long a service may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The consumers' first retry delay in tests: short, so retry tests finish quickly.
pub const RETRY_INITIAL_DELAY_MS: u64 = 200;

/// Attempts in all before a message is dead-lettered, in tests.
pub const RETRY_MAX_ATTEMPTS: u32 = 4;

/// The consumers' prefetch in tests (the services' default is 16): the deliveries each
/// consumer has in flight at most, and (plus 4) the size of its database pool.
pub const CONSUMER_PREFETCH: u16 = 8;

/// Registration's database pool in tests (the service's default is 10).
pub const REGISTRATION_POOL: u32 = 5;

/// How many test systems may run at once in one test process. All tests share one
/// PostgreSQL, which allows 100 connections: a system takes up to
/// [`REGISTRATION_POOL`] + 2 × ([`CONSUMER_PREFETCH`] + 4) for its services plus a few for
/// the harness, about 35, so two fit with room to spare and three might not. On a
/// machine with more cores than that, the other tests wait for a slot instead of failing
/// to connect.
const MAX_CONCURRENT_SYSTEMS: usize = 2;

/// The slots of [`MAX_CONCURRENT_SYSTEMS`]. Tokio's semaphore is not tied to a runtime,
/// so the tests' separate runtimes can share it.
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_SYSTEMS);

/// The services by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Sign-up API + outbox relay.
    Registration,
    /// Welcome mails.
    Email,
    /// Profile read model.
    Profile,
}

impl Service {
    /// All three, in start order.
    pub const ALL: [Self; 3] = [Self::Registration, Self::Email, Self::Profile];

    /// The binary's (and the database's) name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Email => "email",
            Self::Profile => "profile",
        }
    }
}

/// A network path from a service to one of the servers it depends on, which a test can
/// put behind a [`TcpProxy`] of its own and then break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The service's connections to RabbitMQ (the relay's, or a consumer's).
    Amqp,
    /// The service's connections to PostgreSQL (its pool).
    Postgres,
    /// The email service's connections to the SMTP server.
    Smtp,
}

/// Knobs a test can turn before the services start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Registration's AMQP URL, e.g. through a [`crate::tcp_proxy::TcpProxy`].
    pub registration_amqp_url: Option<String>,
    /// Extra variables for every service.
    pub extra_env: Vec<(String, String)>,
    /// Put each service's broker connections behind a proxy of its own
    /// ([`TestSystem::proxy`] with [`Link::Amqp`]), so a test can cut publishers and
    /// consumers separately. Takes precedence over `registration_amqp_url`.
    pub proxy_amqp: bool,
    /// Put each service's database connections behind a proxy of its own
    /// ([`Link::Postgres`]). The harness's own queries ([`TestSystem::db`]) go direct,
    /// so a test can still count rows while a service is cut off.
    pub proxy_postgres: bool,
    /// Put the email service's SMTP connections behind a proxy ([`Link::Smtp`]): a
    /// disabled proxy is an SMTP server that is down, as opposed to
    /// [`SmtpSink::set_accepting`], a server that is up but refuses.
    pub proxy_smtp: bool,
    /// The consumers' first retry delay; [`RETRY_INITIAL_DELAY_MS`] if `None`.
    pub retry_initial_delay_ms: Option<u64>,
    /// The consumers' attempts in all; [`RETRY_MAX_ATTEMPTS`] if `None`. A test whose
    /// outage outlasts the default schedule raises it, so that a transient fault is
    /// bridged by retries rather than ending in the dead-letter queue.
    pub retry_max_attempts: Option<u32>,
}

/// The consumers' retry schedule in one system: needed to name (and delete) the delay
/// queues, and by tests that check how far apart the attempts were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The first delay, in milliseconds; each further one is twice the one before.
    pub initial_delay_ms: u64,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl RetrySchedule {
    /// The delay after each failed attempt but the last: `max_attempts - 1` of them.
    pub fn delays(&self) -> Vec<Duration> {
        (0..self.max_attempts.saturating_sub(1))
            .map(|step| Duration::from_millis(self.initial_delay_ms << step))
            .collect()
    }
}

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

/// The three services running for one test, with their own databases, broker names, SMTP
/// server and OTLP receiver. Dropping it stops the processes and removes the databases,
/// queues and exchange.
#[derive(Debug)]
pub struct TestSystem {
    /// Prefix of every broker name; also the stem of the database names.
    pub id: String,
    /// Receives the welcome mails.
    pub smtp: SmtpSink,
    /// Receives the spans of all three services.
    pub otlp: OtlpSink,
    /// A plain HTTP client.
    pub http: reqwest::Client,
    /// Every process started, first instances first (in [`Service::ALL`] order).
    instances: Vec<Instance>,
    /// The proxies [`Options`] asked for, one per service and link.
    proxies: Vec<(Service, Link, TcpProxy)>,
    /// The consumers' retry schedule.
    retry: RetrySchedule,
    /// Where the service binaries are.
    binaries: PathBuf,
    log_dir: PathBuf,
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
        let slot = RUNNING
            .acquire()
            .await
            .expect("the semaphore is static and never closed");
        let id = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let directory = binaries::directory().await;
        let log_dir = directory.join("system-tests").join(&id);
        let smtp = SmtpSink::start().await.expect("the SMTP sink starts");
        let otlp = OtlpSink::start().await.expect("the OTLP sink starts");
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
        let retry = RetrySchedule {
            initial_delay_ms: options
                .retry_initial_delay_ms
                .unwrap_or(RETRY_INITIAL_DELAY_MS),
            max_attempts: options.retry_max_attempts.unwrap_or(RETRY_MAX_ATTEMPTS),
        };
        let mut system = Self {
            id,
            smtp,
            otlp,
            http: reqwest::Client::new(),
            instances: Vec::new(),
            proxies,
            retry,
            binaries: directory,
            log_dir,
            _slot: slot,
        };
        for service in Service::ALL {
            let env = system.env_for(service, &options);
            system.spawn_instance(service, env);
        }
        for service in Service::ALL {
            system.wait_until_ready(service).await;
        }
        system
    }

    /// Starts one more process of `service` with the same environment as the first (same
    /// database, same queues, same proxies) on a port of its own, waits until it is
    /// ready, and returns its instance number for [`TestSystem::instance`].
    pub async fn add_instance(&mut self, service: Service) -> usize {
        let env = self.instance_ref(service, 0).env.clone();
        let number = self.spawn_instance(service, env);
        self.wait_until_instance_ready(service, number).await;
        number
    }

    fn spawn_instance(&mut self, service: Service, env: Vec<(String, String)>) -> usize {
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
        ServiceProcess::spawn_logging_to(
            &self.binaries.join(service.name()),
            service.name(),
            port,
            env,
            log,
        )
        .expect("the service binary starts")
    }

    fn env_for(&self, service: Service, options: &Options) -> Vec<(String, String)> {
        let amqp_url = match (
            self.find_proxy(service, Link::Amqp),
            service,
            &options.registration_amqp_url,
        ) {
            (Some(proxy), _, _) => format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port()),
            (None, Service::Registration, Some(url)) => url.clone(),
            _ => defaults::AMQP_URL.to_owned(),
        };
        let database_url = match self.find_proxy(service, Link::Postgres) {
            Some(proxy) => format!(
                "postgres://postgres@127.0.0.1:{}/{}_{}",
                proxy.port(),
                self.id,
                service.name()
            ),
            None => self.database_url(service),
        };
        let smtp_url = match self.find_proxy(service, Link::Smtp) {
            Some(proxy) => format!("smtp://127.0.0.1:{}", proxy.port()),
            None => self.smtp.url(),
        };
        let mut env: Vec<(String, String)> = [
            ("DATABASE_URL", database_url),
            ("AMQP_URL", amqp_url),
            ("TOPOLOGY_PREFIX", self.prefix()),
            ("SMTP_URL", smtp_url),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.otlp.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
            ("OTEL_SERVICE_NAME", service.name().to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("RUST_LOG", "info".to_owned()),
            (
                "RETRY_INITIAL_DELAY_MS",
                self.retry.initial_delay_ms.to_string(),
            ),
            ("RETRY_MAX_ATTEMPTS", self.retry.max_attempts.to_string()),
            ("OUTBOX_SWEEP_INTERVAL_MS", "500".to_owned()),
            // Both bound the connections a system takes from the shared PostgreSQL
            // (see MAX_CONCURRENT_SYSTEMS).
            ("DATABASE_MAX_CONNECTIONS", REGISTRATION_POOL.to_string()),
            ("CONSUMER_PREFETCH", CONSUMER_PREFETCH.to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        env.extend(options.extra_env.iter().cloned());
        env
    }

    fn find_proxy(&self, service: Service, link: Link) -> Option<&TcpProxy> {
        self.proxies
            .iter()
            .find(|(s, l, _)| *s == service && *l == link)
            .map(|(_, _, proxy)| proxy)
    }

    /// The proxy between `service` and the server behind `link`, for cutting it; panics
    /// unless [`Options`] asked for it.
    pub fn proxy(&self, service: Service, link: Link) -> &TcpProxy {
        self.find_proxy(service, link).unwrap_or_else(|| {
            panic!(
                "no {link:?} proxy for {}: set it in Options",
                service.name()
            )
        })
    }

    /// The consumers' retry schedule in this system.
    pub fn retry_schedule(&self) -> RetrySchedule {
        self.retry
    }

    /// `t<id>.`: the prefix of this system's exchange and queues.
    pub fn prefix(&self) -> String {
        format!("{}.", self.id)
    }

    /// The service's own database URL.
    pub fn database_url(&self, service: Service) -> String {
        format!("{}/{}_{}", defaults::POSTGRES_BASE, self.id, service.name())
    }

    /// A pool on the service's database, for looking at its rows. Two connections at
    /// most: the harness queries one at a time, and every connection it holds is one
    /// less for the services (all tests share one PostgreSQL with 100 connections).
    pub async fn db(&self, service: Service) -> PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.database_url(service))
            .await
            .expect("the service created its database")
    }

    /// The (first) process of `service`.
    pub fn process(&mut self, service: Service) -> &mut ServiceProcess {
        self.instance(service, 0)
    }

    /// Instance `number` of `service` (0 is the one [`TestSystem::start_with`] started).
    pub fn instance(&mut self, service: Service, number: usize) -> &mut ServiceProcess {
        let index = self.instance_index(service, number);
        &mut self.instances[index].process
    }

    fn instance_ref(&self, service: Service, number: usize) -> &Instance {
        &self.instances[self.instance_index(service, number)]
    }

    fn instance_index(&self, service: Service, number: usize) -> usize {
        self.instances
            .iter()
            .position(|instance| instance.service == service && instance.number == number)
            .unwrap_or_else(|| panic!("no instance {number} of {}", service.name()))
    }

    /// `http://127.0.0.1:<port><path>` of `service` (its first instance).
    pub fn url(&self, service: Service, path: &str) -> String {
        self.instance_url(service, 0, path)
    }

    /// `http://127.0.0.1:<port><path>` of instance `number` of `service`.
    pub fn instance_url(&self, service: Service, number: usize, path: &str) -> String {
        format!(
            "{}{path}",
            self.instance_ref(service, number).process.base_url()
        )
    }

    /// What a sign-up burst needs to run on its own task while the test breaks things:
    /// an HTTP client and the base URL of every registration instance.
    pub fn burst_target(&self) -> BurstTarget {
        let registrations = self
            .instances
            .iter()
            .filter(|instance| instance.service == Service::Registration)
            .map(|instance| instance.process.base_url())
            .collect();
        BurstTarget::new(registrations)
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

    /// Starts instance `number` of `service` again, after a kill or a clean exit: same
    /// environment, same port (so its URL is unchanged), log appended to. Waits until it
    /// is ready.
    pub async fn restart(&mut self, service: Service, number: usize) {
        let index = self.instance_index(service, number);
        let instance = &mut self.instances[index];
        instance.process.kill().await;
        let port = instance.process.port();
        let env = instance.env.clone();
        let process = self.spawn_process(service, number, port, &env);
        self.instances[index].process = process;
        self.wait_until_instance_ready(service, number).await;
    }

    /// Runs `<service> dlq <args…>` (the consumer binaries' dead-letter tool) with the
    /// service's configuration, but straight to the broker (not through a proxy a test may
    /// have cut), and returns its output.
    pub async fn dlq_tool(&self, service: Service, args: &[&str]) -> Output {
        let mut command = vec!["dlq"];
        command.extend_from_slice(args);
        self.subcommand(service, &command).await
    }

    /// Runs `<service> <args…>` (a tool subcommand such as `dlq list` or `replay …`) with
    /// the service's configuration, but straight to the broker (not through a proxy a test
    /// may have cut), and returns its output.
    pub async fn subcommand(&self, service: Service, args: &[&str]) -> Output {
        let mut env = self.instance_ref(service, 0).env.clone();
        env.retain(|(key, _)| key != "AMQP_URL");
        env.push(("AMQP_URL".to_owned(), defaults::AMQP_URL.to_owned()));
        tokio::process::Command::new(self.binaries.join(service.name()))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env)
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .expect("the tool runs")
    }

    /// `<service> dlq list`, parsed: one JSON object per dead-lettered message. Panics
    /// with the tool's output if it fails or prints something else.
    pub async fn dlq_list(&self, service: Service) -> Vec<Value> {
        let output = self.dlq_tool(service, &["list"]).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{} dlq list failed ({}):\n{stdout}\n{}",
            service.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"))
            })
            .collect()
    }

    /// `<service> dlq redrive --id …` (or `--all` when `ids` is empty); returns what it
    /// printed (`redriven N`), panicking with its output if it fails.
    pub async fn dlq_redrive(&self, service: Service, ids: &[String]) -> String {
        let mut args = vec!["redrive"];
        if ids.is_empty() {
            args.push("--all");
        }
        for id in ids {
            args.extend(["--id", id.as_str()]);
        }
        let output = self.dlq_tool(service, &args).await;
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(
            output.status.success(),
            "{} dlq {args:?} failed ({}):\n{stdout}\n{}",
            service.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// The value of one series on instance `number`'s `/metrics`, e.g.
    /// `events_consumed_total{queue="email.user-registered",outcome="done"}`; 0 if the
    /// series is not there (a counter that never moved is not exported).
    pub async fn metric(&self, service: Service, number: usize, series: &str) -> f64 {
        let text = self
            .http
            .get(self.instance_url(service, number, "/metrics"))
            .send()
            .await
            .expect("the service answers /metrics")
            .text()
            .await
            .expect("a text body");
        text.lines()
            .find_map(|line| {
                let value = line.strip_prefix(series)?.strip_prefix(' ')?;
                value.trim().parse().ok()
            })
            .unwrap_or(0.0)
    }

    /// The directory the service logs of this system go to (kept if the test fails).
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The exchange's name.
    pub fn exchange(&self) -> String {
        format!("{}users", self.prefix())
    }

    /// A consumer's work queue, e.g. `queue("email.user-registered")`.
    pub fn queue(&self, name: &str) -> String {
        format!("{}{name}", self.prefix())
    }

    /// Waits until `service` answers 200 on `/readyz`; panics with its log otherwise.
    pub async fn wait_until_ready(&mut self, service: Service) {
        self.wait_until_instance_ready(service, 0).await;
    }

    /// Waits until instance `number` of `service` answers 200 on `/readyz`; panics with
    /// its log otherwise.
    pub async fn wait_until_instance_ready(&mut self, service: Service, number: usize) {
        let url = self.instance_url(service, number, "/readyz");
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if let Ok(response) = self.http.get(&url).send().await
                && response.status() == StatusCode::OK
            {
                return;
            }
            let process = self.instance(service, number);
            assert!(
                process.is_running(),
                "{} exited during start-up:\n{}",
                service.name(),
                process.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{} not ready in time:\n{}",
            service.name(),
            self.instance(service, number).log()
        );
    }

    /// `POST /users` with a JSON body.
    pub async fn register(&self, email: &str, display_name: &str) -> reqwest::Response {
        self.post_user(
            &json!({ "email": email, "display_name": display_name }),
            &[],
        )
        .await
    }

    /// `POST /users` with any JSON body and extra headers.
    pub async fn post_user(&self, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url(Service::Registration, "/users"))
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("registration answers")
    }

    /// Signs a user up and returns the new id, asserting the 201.
    pub async fn register_ok(&self, email: &str, display_name: &str) -> String {
        let response = self.register(email, display_name).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "sign-up of {email} failed"
        );
        let body: Value = response.json().await.expect("JSON body");
        body["id"].as_str().expect("an id").to_owned()
    }

    /// Polls `GET /profiles/{id}` until 200 and returns the profile; panics after `timeout`.
    pub async fn wait_for_profile(&self, user_id: &str, timeout: Duration) -> Value {
        let url = self.url(Service::Profile, &format!("/profiles/{user_id}"));
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let response = self.http.get(&url).send().await.expect("profile answers");
            if response.status() == StatusCode::OK {
                return response.json().await.expect("JSON body");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "profile {user_id} did not appear within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET /emails?to=`.
    pub async fn emails_to(&self, address: &str) -> Vec<Value> {
        self.http
            .get(self.url(Service::Email, "/emails"))
            .query(&[("to", address)])
            .send()
            .await
            .expect("email answers")
            .json()
            .await
            .expect("a JSON list")
    }

    /// A scalar from a service's database, e.g. a count.
    pub async fn scalar(&self, service: Service, sql: &'static str) -> i64 {
        let db = self.db(service).await;
        let value = sqlx::query_scalar(sql)
            .fetch_one(&db)
            .await
            .expect("the query runs");
        db.close().await;
        value
    }

    /// The consumers' work queues (`email.user-registered`, …) without prefix.
    pub const CONSUMER_QUEUES: [&'static str; 2] =
        ["email.user-registered", "profile.user-registered"];

    /// The delay queues of a consumer's work queue (`name` without prefix), one per
    /// retry delay, as the consumer names them.
    pub fn delay_queues(&self, name: &str) -> Vec<String> {
        let work = self.queue(name);
        self.retry
            .delays()
            .iter()
            .map(|delay| format!("{work}.delay.{}ms", delay.as_millis()))
            .collect()
    }

    /// A consumer's dead-letter queue (`name` without prefix).
    pub fn dead_letter_queue(&self, name: &str) -> String {
        format!("{}.dlq", self.queue(name))
    }

    /// Every queue this system may have declared: work queues, DLQs, delay queues.
    pub fn queue_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for consumer in Self::CONSUMER_QUEUES {
            names.extend(self.delay_queues(consumer));
            names.push(self.dead_letter_queue(consumer));
            names.push(self.queue(consumer));
        }
        names
    }

    async fn clean_up(id: String, queues: Vec<String>, exchange: String) {
        let broker = Broker::connect().await;
        broker.delete(&queues, &exchange).await;
        if let Ok(mut admin) =
            PgConnection::connect(&format!("{}/postgres", defaults::POSTGRES_BASE)).await
        {
            for service in Service::ALL {
                let statement = format!(
                    "drop database if exists \"{id}_{}\" with (force)",
                    service.name()
                );
                let _ = sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut admin)
                    .await;
            }
        }
    }
}

impl Drop for TestSystem {
    fn drop(&mut self) {
        // Kill first, so nothing re-declares what is being deleted.
        self.instances.clear();
        let (id, queues, exchange) = (self.id.clone(), self.queue_names(), self.exchange());
        // Drop cannot await; a thread with its own runtime can, whatever runtime we are in.
        let cleanup = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(Self::clean_up(id, queues, exchange));
            }
        });
        let _ = cleanup.join();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}
