//! For the services' in-process API tests only (`services/*/tests/api`), never for a
//! service's own code: registration, email and profile each build their app in the test
//! process, run it on port 0 against the local PostgreSQL and RabbitMQ, and drive it over
//! HTTP, and all three need the same scaffolding around that.
//!
//! - [`Isolation`]: a database and a topology prefix of the test's own, so tests run in
//!   parallel on one PostgreSQL and one RabbitMQ without seeing each other.
//! - [`RunningApp`]: the built [`App`] running until `/readyz` says 200, the HTTP client to
//!   drive it with, and [`RunningApp::stop`], which stops it as SIGTERM would.
//! - [`Cleanup`]: what the app created (its database, exchange and queues), removed when it
//!   stops, or best effort when a test panics first.
//!
//! It exists so that this scaffolding is written once: it used to be copied into each
//! service's `tests/api/helpers.rs`, the copies differing only in the service's name. What
//! stays in a service's helpers is its own: its configuration flags, the queues it
//! declares, and the typed requests its tests send.

use std::time::{Duration, Instant};

use lapin::{
    Connection, ConnectionProperties,
    options::{ExchangeDeleteOptions, QueueDeleteOptions},
};
use reqwest::Response;
use service_kit::app::App;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The local PostgreSQL (trust auth); each test adds a database of its own to it.
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
/// The local RabbitMQ, the apps' default broker.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The key that seals personal data in the tests' databases (`--pii-keys`).
pub const PII_KEYS: &str = "test-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The key of the tests' lookup hashes (`--pii-lookup-key`).
pub const PII_LOOKUP_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
/// A sealer with the tests' keys, for tests that assemble a service's parts by hand.
pub fn test_sealer() -> service_kit::pii::Sealer {
    service_kit::pii::PiiSettings {
        pii_keys: Some(PII_KEYS.to_owned()),
        pii_keys_file: None,
        pii_lookup_key: Some(PII_LOOKUP_KEY.to_owned()),
        pii_lookup_key_file: None,
    }
    .sealer()
    .expect("the test keys are valid")
}

/// How long an app may take to become ready, and to stop.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// The one retry delay left by `--retry-max-attempts 2 --retry-initial-delay-ms 100`
/// ([`Isolation::consumer_args`]), so a consuming app declares one delay queue, not five.
pub const RETRY_DELAY_MS: &str = "100";

/// The names one test owns, from one random id: the database `test_<id>` and the topology
/// prefix `t<id>.`.
#[derive(Debug, Clone)]
pub struct Isolation {
    database: String,
    database_url: String,
    prefix: String,
}

impl Isolation {
    /// Names from a new random id.
    pub fn new() -> Self {
        let id = Uuid::new_v4().simple();
        let database = format!("test_{id}");
        Self {
            database_url: format!("{POSTGRES}/{database}"),
            database,
            prefix: format!("t{id}."),
        }
    }

    /// The database's name, `test_<id>`; the app creates it when it is built.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The database on the local PostgreSQL, for `--database-url`.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// `t<id>.`, for `--topology-prefix`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The local RabbitMQ, for `--amqp-url`.
    pub fn amqp_url(&self) -> &'static str {
        AMQP_URL
    }

    /// `name` as the app declares it under the prefix, e.g. `t<id>.users`.
    pub fn topology(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// `program` and the flags every service takes (`service_kit::config::ServiceArgs`),
    /// set for this test: port 0, this database, the local broker, this prefix, and a
    /// shutdown timeout of 5 s; for the service's `Config::try_parse_from`.
    pub fn service_args(&self, program: &str) -> Vec<String> {
        [
            program,
            "--http-addr",
            "127.0.0.1:0",
            "--database-url",
            self.database_url(),
            "--amqp-url",
            self.amqp_url(),
            "--topology-prefix",
            self.prefix(),
            "--shutdown-timeout-secs",
            "5",
        ]
        .map(str::to_owned)
        .into()
    }

    /// [`Isolation::service_args`] and the flags every consuming service takes
    /// (`messaging::consumer::args::ConsumerArgs`): a prefetch of 2 and two attempts,
    /// so one retry after [`RETRY_DELAY_MS`].
    pub fn consumer_args(&self, program: &str) -> Vec<String> {
        let mut args = self.service_args(program);
        args.extend(
            [
                "--prefetch",
                "2",
                "--retry-max-attempts",
                "2",
                "--retry-initial-delay-ms",
                RETRY_DELAY_MS,
            ]
            .map(str::to_owned),
        );
        args
    }

    /// The queues a consuming app run with [`Isolation::consumer_args`] declares for its
    /// work `queue` (without the prefix): dead-letter, delay and work queue, in the order
    /// to delete them.
    pub fn consumer_queues(&self, queue: &str) -> Vec<String> {
        let work = self.topology(queue);
        vec![
            format!("{work}.dlq"),
            format!("{work}.delay.{RETRY_DELAY_MS}ms"),
            work,
        ]
    }

    /// What to remove after the test: this database, `exchange` and `queues` (full names,
    /// see [`Isolation::topology`]; the queues are deleted in this order, then the
    /// exchange).
    pub fn cleanup(&self, exchange: String, queues: Vec<String>) -> Cleanup {
        Cleanup {
            database: self.database.clone(),
            exchange,
            queues,
            removed: false,
        }
    }
}

impl Default for Isolation {
    /// The same as [`Isolation::new`]: names from a new random id.
    fn default() -> Self {
        Self::new()
    }
}

/// What a test's app leaves behind: its database, its exchange and the queues it declared.
///
/// [`Cleanup::remove`] removes them; dropped without that (a test panicked), it removes
/// them best effort. Failures are ignored either way: a leftover has a random name and
/// disturbs no other test.
#[derive(Debug)]
pub struct Cleanup {
    database: String,
    exchange: String,
    queues: Vec<String>,
    /// Set once [`Cleanup::remove`] has finished, so `Drop` does not remove again.
    removed: bool,
}

impl Cleanup {
    /// Drops the database (closing any connection still open) and deletes the queues and
    /// the exchange.
    pub async fn remove(mut self) {
        remove(&self.database, &self.queues, &self.exchange).await;
        self.removed = true;
    }
}

impl Drop for Cleanup {
    /// The guard for a test that panicked before removing. `Drop` cannot await and runs on
    /// the test's runtime, so the removal runs on a thread with a runtime of its own.
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let database = std::mem::take(&mut self.database);
        let exchange = std::mem::take(&mut self.exchange);
        let queues = std::mem::take(&mut self.queues);
        let removal = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(async {
                    let removal = remove(&database, &queues, &exchange);
                    let _ = tokio::time::timeout(PATIENCE, removal).await;
                });
            }
        });
        let _ = removal.join();
    }
}

/// Drops `database` (closing any connection still open) and deletes `queues` and
/// `exchange`, each on its own channel (a failed delete closes its channel).
async fn remove(database: &str, queues: &[String], exchange: &str) {
    if let Ok(mut admin) = PgConnection::connect(&format!("{POSTGRES}/postgres")).await {
        let statement = format!("drop database if exists \"{database}\" with (force)");
        let _ = sqlx::query(AssertSqlSafe(statement))
            .execute(&mut admin)
            .await;
        let _ = admin.close().await;
    }
    let Ok(broker) = Connection::connect(AMQP_URL, ConnectionProperties::default()).await else {
        return;
    };
    for queue in queues {
        if let Ok(channel) = broker.create_channel().await {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
            let _ = channel.close(200, "deleted".into()).await;
        }
    }
    if let Ok(channel) = broker.create_channel().await {
        let _ = channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = broker.close(200, "test cleaned up".into()).await;
}

/// A service app running in the test's process, and the HTTP client to drive it with.
///
/// Call [`RunningApp::stop`] at the end of every test. If a test panics first, `Drop`
/// cancels the app and aborts its task, and the [`Cleanup`]'s own `Drop` removes what it
/// created, best effort.
#[derive(Debug)]
pub struct RunningApp {
    /// The service's name, for the messages of a failed request or start.
    name: &'static str,
    /// `http://127.0.0.1:<port>`.
    address: String,
    http: reqwest::Client,
    /// The app's shutdown token and task; `None` once [`RunningApp::stop`] took them.
    running: Option<(CancellationToken, JoinHandle<std::io::Result<()>>)>,
    /// `None` once [`RunningApp::stop`] took it to remove.
    cleanup: Option<Cleanup>,
}

impl RunningApp {
    /// Runs `app` (built on port 0) with a shutdown token of its own and waits until
    /// `/readyz` says 200, within [`PATIENCE`]. `name` is the service's, for messages;
    /// `cleanup` is what the app creates, removed when it stops.
    pub async fn start(name: &'static str, app: App, cleanup: Cleanup) -> Self {
        let port = app.local_addr().expect("the listener is bound").port();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        let running = Self {
            name,
            address: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            running: Some((shutdown, task)),
            cleanup: Some(cleanup),
        };
        running.wait_until_ready().await;
        running
    }

    /// `http://127.0.0.1:<port>`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The client to build a request with, e.g. a `POST` with headers.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `path` on the app, e.g. `/users` as `http://127.0.0.1:<port>/users`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `GET` a path on the app; panics if no answer comes (any status is an answer).
    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|error| panic!("{} answers: {error:?}", self.name))
    }

    /// Stops the app as SIGTERM would and waits for it, within [`PATIENCE`], then removes
    /// what it created (the [`Cleanup`]).
    pub async fn stop(mut self) {
        let (shutdown, task) = self.running.take().expect("stop runs once");
        shutdown.cancel();
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("the app stops within its shutdown timeout")
            .expect("the app task does not panic")
            .expect("the app stops without an I/O error");
        if let Some(cleanup) = self.cleanup.take() {
            cleanup.remove().await;
        }
    }

    /// Stops the app like [`RunningApp::stop`] but removes nothing: the returned
    /// [`Cleanup`] goes to the next app on the same database (a restart), or removes it
    /// when dropped.
    pub async fn stop_keeping(mut self) -> Cleanup {
        let (shutdown, task) = self.running.take().expect("stop runs once");
        shutdown.cancel();
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("the app stops within its shutdown timeout")
            .expect("the app task does not panic")
            .expect("the app stops without an I/O error");
        self.cleanup.take().expect("stop runs once")
    }

    async fn wait_until_ready(&self) {
        let started = Instant::now();
        loop {
            let answer = self.http.get(self.url("/readyz")).send().await;
            match answer {
                Ok(response) if response.status() == 200 => return,
                _ if started.elapsed() > PATIENCE => {
                    panic!("{} not ready after {PATIENCE:?}: {answer:?}", self.name)
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

impl Drop for RunningApp {
    /// The guard for a test that panicked before [`RunningApp::stop`]: stops the app
    /// without waiting for it; the `cleanup` field, dropped next, does the removal.
    fn drop(&mut self) {
        if let Some((shutdown, task)) = self.running.take() {
            shutdown.cancel();
            task.abort();
        }
    }
}

/// The body of an error answer, checked to be an RFC 9457 problem document: served as
/// `application/problem+json`, with `type`, `title`, `detail` and `code` as strings and
/// `status` equal to the response's. Panics, naming `case`, otherwise.
pub async fn problem(response: Response, case: &str) -> serde_json::Value {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: serde_json::Value = response
        .json()
        .await
        .unwrap_or_else(|error| panic!("{case}: a JSON error body expected: {error}"));
    assert_eq!(
        content_type,
        service_kit::problem::CONTENT_TYPE,
        "{case}: {body}"
    );
    for member in ["type", "title", "detail", "code"] {
        assert!(body[member].is_string(), "{case}: `{member}` in {body}");
    }
    assert_eq!(body["status"], status.as_u16(), "{case}: {body}");
    body
}

/// Compares a service's generated OpenAPI document with the one committed as
/// `docs/openapi/<service>.json`; when they differ, writes the generated one over it and
/// panics, so the diff shows up in review (the same pattern as the event schemas' test).
/// Outside CI, run the test again to see it pass, then commit the file.
pub fn ensure_openapi_committed(service: &str, document: &impl serde::Serialize) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/openapi")
        .join(format!("{service}.json"));
    let mut generated = serde_json::to_string_pretty(document).expect("a document serialises");
    generated.push('\n');
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed.replace("\r\n", "\n") == generated {
        return;
    }
    std::fs::write(&path, generated).expect("docs/openapi is writable");
    panic!(
        "{} was out of date and has been regenerated; review and commit it",
        path.display()
    );
}

/// Checks a `GET /openapi.json` answer: 200, OpenAPI 3.1, each of `operations` (path,
/// method) present, the `Problem` schema among the components, and the whole document
/// equal to `generated` (what the code builds, and what is committed).
pub async fn check_served_openapi(
    response: Response,
    generated: &impl serde::Serialize,
    operations: &[(&str, &str)],
) {
    assert_eq!(
        response.status(),
        reqwest::StatusCode::OK,
        "GET /openapi.json"
    );
    let served: serde_json::Value = response.json().await.expect("a JSON document");
    let version = served["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1"), "OpenAPI 3.1, got {version:?}");
    for (path, method) in operations {
        assert!(
            served["paths"][path][method].is_object(),
            "{method} {path} is documented"
        );
    }
    assert!(served["components"]["schemas"]["Problem"].is_object());
    let generated = serde_json::to_value(generated).expect("a document serialises");
    assert_eq!(
        served, generated,
        "the served document is the generated one"
    );
}
