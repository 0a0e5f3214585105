//! `spawn_app`: registration built in this process by its own `startup::build`, on port
//! 0, with a database and broker names of its own, and the `TestApp` tests drive it with.
//! Running it, waiting for it and removing what it created are `test_support`'s; the
//! tracing set-up is registration's own.

use std::sync::Once;

use clap::Parser;
use opentelemetry::trace::TracerProvider as _;
use registration::config::Config;
use reqwest::Response;
use serde_json::Value;
use sqlx::PgPool;
use test_support::{Cleanup, Isolation, RunningApp};
use tracing_subscriber::{
    Layer as _,
    filter::{LevelFilter, Targets},
    layer::SubscriberExt as _,
};

/// A running registration app and what a test needs to talk to it and look behind it.
pub(crate) struct TestApp {
    app: RunningApp,
    /// The app's own database, for counting what a request wrote.
    db: PgPool,
    /// Its names, for a restart on the same database.
    isolation: Isolation,
}

/// A stopped app's database and names, for the next app to start on
/// ([`TestApp::stop_keeping_database`], [`spawn_app_on`]).
pub(crate) struct KeptDatabase {
    isolation: Isolation,
    cleanup: Cleanup,
}

/// Builds registration with a random database and topology prefix, runs it, and waits
/// until `/readyz` says 200 (database migrated, relay connected, exchange declared). The
/// sign-up rate limit is off: the tests sign up many users from one address.
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(&["--sign-up-rate-limit-per-second", "0"]).await
}

/// [`spawn_app`] with `flags` added to the test's own, e.g. a rate limit.
pub(crate) async fn spawn_app_with(flags: &[&str]) -> TestApp {
    let isolation = Isolation::new();
    // Registration declares its exchange and no queue.
    let cleanup = isolation.cleanup(isolation.topology("users"), Vec::new());
    start(isolation, cleanup, test_support::PII_KEYS, flags).await
}

/// Registration restarted on a stopped app's database, with `pii_keys` (`PII_KEYS`).
pub(crate) async fn spawn_app_on(kept: KeptDatabase, pii_keys: &str) -> TestApp {
    let flags = ["--sign-up-rate-limit-per-second", "0"];
    start(kept.isolation, kept.cleanup, pii_keys, &flags).await
}

async fn start(isolation: Isolation, cleanup: Cleanup, pii_keys: &str, flags: &[&str]) -> TestApp {
    install_tracing();
    let mut args = isolation.service_args_with_keys("registration", pii_keys);
    args.extend(flags.iter().map(|flag| (*flag).to_owned()));
    let config = Config::try_parse_from(args).expect("the test configuration parses");
    let app = registration::startup::build(config)
        .await
        .expect("registration builds against the local PostgreSQL");
    let app = RunningApp::start("registration", app, cleanup).await;
    let db = PgPool::connect(isolation.database_url())
        .await
        .expect("the app created its database");
    TestApp { app, db, isolation }
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
        let mut request = self.app.http().post(self.app.url("/users")).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("registration answers")
    }

    /// `POST /users` with a body that need not be JSON, under `content_type`.
    pub(crate) async fn post_raw_user(&self, content_type: &str, body: String) -> Response {
        self.app
            .http()
            .post(self.app.url("/users"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("registration answers")
    }

    /// The app's base URL and its HTTP client, for a request the helpers do not build.
    pub(crate) fn http(&self) -> (&reqwest::Client, String) {
        (self.app.http(), self.app.url("/users"))
    }

    /// `GET` a path, e.g. the `Location` a sign-up answered with.
    pub(crate) async fn get(&self, path: &str) -> Response {
        self.app.get(path).await
    }

    /// `DELETE` a path.
    pub(crate) async fn delete(&self, path: &str) -> Response {
        self.app
            .http()
            .delete(self.app.url(path))
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

    /// One text value from the app's database (`null` reads as empty).
    pub(crate) async fn text(&self, query: &'static str) -> String {
        let value: Option<String> = sqlx::query_scalar(query)
            .fetch_one(&self.db)
            .await
            .expect("the query runs");
        value.unwrap_or_default()
    }

    /// The type and (opened) payload of every event about one user in the event log, in
    /// order.
    pub(crate) async fn events_of(&self, user_id: &str) -> Vec<(String, Value)> {
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "select event_type, payload_sealed from outbox
             where aggregate_id = $1::uuid order by position",
        )
        .bind(user_id)
        .fetch_all(&self.db)
        .await
        .expect("the outbox is readable");
        let pii = test_support::test_sealer();
        rows.into_iter()
            .map(|(event_type, sealed)| {
                let payload = pii
                    .open("outbox.payload", &sealed)
                    .expect("the payload opens with the test key");
                let payload = serde_json::from_str(&payload).expect("the payload is JSON");
                (event_type, payload)
            })
            .collect()
    }

    /// The `traceparent` column of every outbox row, in order.
    pub(crate) async fn outbox_traceparents(&self) -> Vec<Option<String>> {
        sqlx::query_scalar("select traceparent from outbox order by position")
            .fetch_all(&self.db)
            .await
            .expect("the outbox is readable")
    }

    /// Closes the test's pool, stops the app as SIGTERM would and waits for it, then drops
    /// its database and deletes its exchange. Call it at the end of every test; if a test
    /// panics first, `Drop` does the removal, best effort.
    pub(crate) async fn stop(self) {
        self.db.close().await;
        self.app.stop().await;
    }

    /// Stops the app and keeps its database for [`spawn_app_on`].
    pub(crate) async fn stop_keeping_database(self) -> KeptDatabase {
        self.db.close().await;
        let cleanup = self.app.stop_keeping().await;
        KeptDatabase {
            isolation: self.isolation,
            cleanup,
        }
    }

    /// Runs a statement on the app's database, e.g. a row as an older version wrote it.
    pub(crate) async fn execute(&self, statement: &'static str) {
        sqlx::query(statement)
            .execute(&self.db)
            .await
            .expect("the statement runs");
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
