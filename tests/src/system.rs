use std::{path::PathBuf, time::Duration};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};

use crate::{
    binaries,
    broker::Broker,
    defaults,
    otlp_sink::OtlpSink,
    process::{ServiceProcess, free_port},
    smtp_sink::SmtpSink,
};

/// How long a service may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The consumers' first retry delay in tests: short, so retry tests finish quickly.
pub const RETRY_INITIAL_DELAY_MS: u64 = 200;

/// Attempts in all before a message is dead-lettered, in tests.
pub const RETRY_MAX_ATTEMPTS: u32 = 4;

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

/// Knobs a test can turn before the services start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Registration's AMQP URL, e.g. through a [`crate::tcp_proxy::TcpProxy`].
    pub registration_amqp_url: Option<String>,
    /// Extra variables for every service.
    pub extra_env: Vec<(String, String)>,
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
    processes: Vec<ServiceProcess>,
    log_dir: PathBuf,
}

impl TestSystem {
    /// Starts the three services with default options and waits until all are ready.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Starts the three services with `options` and waits until all are ready.
    pub async fn start_with(options: Options) -> Self {
        let id = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let directory = binaries::directory().await;
        let log_dir = directory.join("system-tests").join(&id);
        let smtp = SmtpSink::start().await.expect("the SMTP sink starts");
        let otlp = OtlpSink::start().await.expect("the OTLP sink starts");
        let mut system = Self {
            id,
            smtp,
            otlp,
            http: reqwest::Client::new(),
            processes: Vec::new(),
            log_dir,
        };
        for service in Service::ALL {
            let env = system.env_for(service, &options);
            let process = ServiceProcess::spawn(
                &directory.join(service.name()),
                service.name(),
                free_port(),
                &env,
                &system.log_dir,
            )
            .expect("the service binary starts");
            system.processes.push(process);
        }
        for service in Service::ALL {
            system.wait_until_ready(service).await;
        }
        system
    }

    fn env_for(&self, service: Service, options: &Options) -> Vec<(String, String)> {
        let amqp_url = match (service, &options.registration_amqp_url) {
            (Service::Registration, Some(url)) => url.clone(),
            _ => defaults::AMQP_URL.to_owned(),
        };
        let mut env: Vec<(String, String)> = [
            ("DATABASE_URL", self.database_url(service)),
            ("AMQP_URL", amqp_url),
            ("TOPOLOGY_PREFIX", self.prefix()),
            ("SMTP_URL", self.smtp.url()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.otlp.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
            ("OTEL_SERVICE_NAME", service.name().to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("RUST_LOG", "info".to_owned()),
            ("RETRY_INITIAL_DELAY_MS", RETRY_INITIAL_DELAY_MS.to_string()),
            ("RETRY_MAX_ATTEMPTS", RETRY_MAX_ATTEMPTS.to_string()),
            ("OUTBOX_SWEEP_INTERVAL_MS", "500".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        env.extend(options.extra_env.iter().cloned());
        env
    }

    /// `t<id>.`: the prefix of this system's exchange and queues.
    pub fn prefix(&self) -> String {
        format!("{}.", self.id)
    }

    /// The service's own database URL.
    pub fn database_url(&self, service: Service) -> String {
        format!("{}/{}_{}", defaults::POSTGRES_BASE, self.id, service.name())
    }

    /// A pool on the service's database, for looking at its rows.
    pub async fn db(&self, service: Service) -> PgPool {
        PgPool::connect(&self.database_url(service))
            .await
            .expect("the service created its database")
    }

    /// The running process of `service`.
    pub fn process(&mut self, service: Service) -> &mut ServiceProcess {
        let index = Service::ALL
            .iter()
            .position(|s| *s == service)
            .expect("every service is in ALL");
        &mut self.processes[index]
    }

    /// `http://127.0.0.1:<port><path>` of `service`.
    pub fn url(&self, service: Service, path: &str) -> String {
        let index = Service::ALL
            .iter()
            .position(|s| *s == service)
            .expect("every service is in ALL");
        format!("{}{path}", self.processes[index].base_url())
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
        let url = self.url(service, "/readyz");
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if let Ok(response) = self.http.get(&url).send().await
                && response.status() == StatusCode::OK
            {
                return;
            }
            let process = self.process(service);
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
            self.process(service).log()
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

    /// Every queue this system may have declared: work queues, DLQs, delay queues.
    pub fn queue_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for consumer in ["email.user-registered", "profile.user-registered"] {
            let work = self.queue(consumer);
            for step in 0..RETRY_MAX_ATTEMPTS.saturating_sub(1) {
                names.push(format!("{work}.delay.{}ms", RETRY_INITIAL_DELAY_MS << step));
            }
            names.push(format!("{work}.dlq"));
            names.push(work);
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
        self.processes.clear();
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
