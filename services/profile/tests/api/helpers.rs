//! `spawn_app`: the profile service built in this process by its own `profile::build`,
//! on port 0, with a database and broker names of its own, and the `TestApp` tests drive
//! it with.

use std::time::{Duration, Instant};

use clap::Parser;
use lapin::{
    Connection, ConnectionProperties,
    options::{ExchangeDeleteOptions, QueueDeleteOptions},
};
use profile::Config;
use reqwest::Response;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The local PostgreSQL (trust auth); each test adds a database of its own to it.
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
/// The local RabbitMQ, the app's default broker.
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The consumer's work queue, without the test prefix.
const QUEUE: &str = "profile.user-registered";
/// The one retry delay left by `--retry-max-attempts 2 --retry-initial-delay-ms 100`,
/// so the app declares one delay queue, not five.
const RETRY_DELAY_MS: &str = "100";
/// How long the app may take to become ready, and to stop.
const PATIENCE: Duration = Duration::from_secs(10);

/// A running profile app and what a test needs to talk to it.
pub(crate) struct TestApp {
    /// `http://127.0.0.1:<port>`.
    address: String,
    http: reqwest::Client,
    /// What to stop and remove; `None` once [`TestApp::stop`] has done it.
    teardown: Option<Teardown>,
}

/// Builds the profile service with a random database and topology prefix, runs it, and
/// waits until `/readyz` says 200 (database migrated, queues declared and consumed).
pub(crate) async fn spawn_app() -> TestApp {
    let id = Uuid::new_v4().simple();
    let database = format!("test_{id}");
    let prefix = format!("t{id}.");
    let database_url = format!("{POSTGRES}/{database}");
    let config = Config::try_parse_from([
        "profile",
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
        "--prefetch",
        "2",
        "--retry-max-attempts",
        "2",
        "--retry-initial-delay-ms",
        RETRY_DELAY_MS,
    ])
    .expect("the test configuration parses");
    let app = profile::build(config)
        .await
        .expect("profile builds against the local PostgreSQL");
    let port = app.local_addr().expect("the listener is bound").port();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));

    let work = format!("{prefix}{QUEUE}");
    let test_app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
        teardown: Some(Teardown {
            shutdown,
            task,
            database,
            exchange: format!("{prefix}users"),
            queues: vec![
                format!("{work}.dlq"),
                format!("{work}.delay.{RETRY_DELAY_MS}ms"),
                work,
            ],
        }),
    };
    test_app.wait_until_ready().await;
    test_app
}

impl TestApp {
    /// `GET /profiles/{user_id}`; `user_id` is text, so a test can send a malformed one.
    pub(crate) async fn get_profile(&self, user_id: &str) -> Response {
        self.get(&format!("/profiles/{user_id}")).await
    }

    /// `GET` an operational route: `/healthz`, `/readyz`.
    pub(crate) async fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("profile answers")
    }

    /// Stops the app as SIGTERM would and waits for it, then drops its database and
    /// deletes its queues and exchange. Call it at the end of every test; if a test
    /// panics first, `Drop` does the removal, best effort.
    pub(crate) async fn stop(mut self) {
        let teardown = self.teardown.take().expect("stop runs once");
        teardown.shutdown.cancel();
        tokio::time::timeout(PATIENCE, teardown.task)
            .await
            .expect("the app stops within its shutdown timeout")
            .expect("the app task does not panic")
            .expect("the app stops without an I/O error");
        remove(&teardown.database, &teardown.queues, &teardown.exchange).await;
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
                    panic!("profile not ready after {PATIENCE:?}: {answer:?}")
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
    /// Work, dead-letter and delay queue.
    queues: Vec<String>,
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
                    let removal = remove(&teardown.database, &teardown.queues, &teardown.exchange);
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
