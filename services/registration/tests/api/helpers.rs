//! `spawn_app`: registration built in this process by its own `startup::build`, on port
//! 0, with a database and broker names of its own, and the `TestApp` tests drive it with.

use std::{
    sync::Once,
    time::{Duration, Instant},
};

use clap::Parser;
use lapin::{Connection, ConnectionProperties, options::ExchangeDeleteOptions};
use opentelemetry::trace::TracerProvider as _;
use registration::config::Config;
use reqwest::Response;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{
    Layer as _,
    filter::{LevelFilter, Targets},
    layer::SubscriberExt as _,
};
use uuid::Uuid;

/// The local PostgreSQL (trust auth); each test adds a database of its own to it.
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
/// The local RabbitMQ, the app's default broker.
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// How long the app may take to become ready, and to stop.
const PATIENCE: Duration = Duration::from_secs(10);

/// A running registration app and what a test needs to talk to it and look behind it.
pub(crate) struct TestApp {
    /// `http://127.0.0.1:<port>`.
    address: String,
    http: reqwest::Client,
    /// The app's own database, for counting what a request wrote.
    db: PgPool,
    /// What to stop and remove; `None` once [`TestApp::stop`] has done it.
    teardown: Option<Teardown>,
}

/// Builds registration with a random database and topology prefix, runs it, and waits
/// until `/readyz` says 200 (database migrated, relay connected, exchange declared).
pub(crate) async fn spawn_app() -> TestApp {
    install_tracing();
    let id = Uuid::new_v4().simple();
    let database = format!("test_{id}");
    let prefix = format!("t{id}.");
    let database_url = format!("{POSTGRES}/{database}");
    let config = Config::try_parse_from([
        "registration",
        "--http-addr",
        "127.0.0.1:0",
        "--database-url",
        &database_url,
        "--amqp-url",
        AMQP_URL,
        "--topology-prefix",
        &prefix,
        "--shutdown-timeout-secs",
        "5",
    ])
    .expect("the test configuration parses");
    let app = registration::startup::build(config)
        .await
        .expect("registration builds against the local PostgreSQL");
    let port = app.local_addr().expect("the listener is bound").port();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));

    let db = PgPool::connect(&database_url)
        .await
        .expect("the app created its database");
    let test_app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
        db,
        teardown: Some(Teardown {
            shutdown,
            task,
            database,
            exchange: format!("{prefix}users"),
        }),
    };
    test_app.wait_until_ready().await;
    test_app
}

impl TestApp {
    /// `POST /users` with `body` as JSON.
    pub(crate) async fn post_user(&self, body: &Value) -> Response {
        self.post_user_with_headers(body, &[]).await
    }

    /// `POST /users` with `body` as JSON and extra headers (`Idempotency-Key`,
    /// `traceparent`).
    pub(crate) async fn post_user_with_headers(
        &self,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self.http.post(self.url("/users")).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("registration answers")
    }

    /// `POST /users` with a body that need not be JSON, under `content_type`.
    pub(crate) async fn post_raw_user(&self, content_type: &str, body: String) -> Response {
        self.http
            .post(self.url("/users"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("registration answers")
    }

    /// `GET` a path, e.g. the `Location` a sign-up answered with.
    pub(crate) async fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("registration answers")
    }

    /// One number from the app's database, e.g. `select count(*) from outbox`.
    pub(crate) async fn count(&self, query: &'static str) -> i64 {
        sqlx::query_scalar(query)
            .fetch_one(&self.db)
            .await
            .expect("the count query runs")
    }

    /// The `traceparent` column of every outbox row, in order.
    pub(crate) async fn outbox_traceparents(&self) -> Vec<Option<String>> {
        sqlx::query_scalar("select traceparent from outbox order by position")
            .fetch_all(&self.db)
            .await
            .expect("the outbox is readable")
    }

    /// Stops the app as SIGTERM would and waits for it, then drops its database and
    /// deletes its exchange. Call it at the end of every test; if a test panics first,
    /// `Drop` does the removal, best effort.
    pub(crate) async fn stop(mut self) {
        self.db.close().await;
        let teardown = self.teardown.take().expect("stop runs once");
        teardown.shutdown.cancel();
        tokio::time::timeout(PATIENCE, teardown.task)
            .await
            .expect("the app stops within its shutdown timeout")
            .expect("the app task does not panic")
            .expect("the app stops without an I/O error");
        remove(&teardown.database, &teardown.exchange).await;
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    async fn wait_until_ready(&self) {
        let started = Instant::now();
        loop {
            let answer = self.http.get(self.url("/readyz")).send().await;
            match answer {
                Ok(response) if response.status() == 200 => return,
                _ if started.elapsed() > PATIENCE => {
                    panic!("registration not ready after {PATIENCE:?}: {answer:?}")
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

/// What a running app leaves behind until it is stopped and removed.
struct Teardown {
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
    database: String,
    exchange: String,
}

impl Drop for TestApp {
    /// The guard for a test that panicked before [`TestApp::stop`]: stops the app and
    /// removes what it created. `Drop` cannot await and runs on the test's runtime, so
    /// the removal runs on a thread with a runtime of its own. Failures are ignored: a
    /// leftover has a random name and disturbs no other test.
    fn drop(&mut self) {
        let Some(teardown) = self.teardown.take() else {
            return;
        };
        teardown.shutdown.cancel();
        teardown.task.abort();
        let removal = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(async {
                    let removal = remove(&teardown.database, &teardown.exchange);
                    let _ = tokio::time::timeout(PATIENCE, removal).await;
                });
            }
        });
        let _ = removal.join();
    }
}

/// Drops `database` (closing any connection still open) and deletes `exchange`.
async fn remove(database: &str, exchange: &str) {
    if let Ok(mut admin) = PgConnection::connect(&format!("{POSTGRES}/postgres")).await {
        let statement = format!("drop database if exists \"{database}\" with (force)");
        let _ = sqlx::query(AssertSqlSafe(statement))
            .execute(&mut admin)
            .await;
        let _ = admin.close().await;
    }
    if let Ok(broker) = Connection::connect(AMQP_URL, ConnectionProperties::default()).await {
        if let Ok(channel) = broker.create_channel().await {
            let _ = channel
                .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = broker.close(200, "test cleaned up".into()).await;
    }
}

/// Installs, once per test binary, what `telemetry::init` installs in `main` for traces:
/// the W3C propagator and a tracing subscriber with an OpenTelemetry layer. Without them
/// the request span has no trace id, so `traceresponse` would be all zeros and a
/// caller's `traceparent` would be ignored. Nothing is exported and nothing is logged.
fn install_tracing() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        telemetry::install_propagator();
        let tracer = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .build()
            .tracer("registration-api-tests");
        let only_ours = Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target("lapin", LevelFilter::OFF)
            .with_target("amq_protocol", LevelFilter::OFF)
            .with_target("sqlx", LevelFilter::OFF);
        let subscriber = tracing_subscriber::registry().with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(only_ours),
        );
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other subscriber is installed in this test binary");
    });
}
