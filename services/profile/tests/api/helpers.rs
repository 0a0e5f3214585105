//! `spawn_app`: the profile service built in this process by its own `profile::build`,
//! on port 0, with a database and broker names of its own, and the `TestApp` tests drive
//! it with. Running it, waiting for it and removing what it created are `test_support`'s.

use clap::Parser;
use profile::Config;
use reqwest::Response;
use sqlx::PgPool;
use test_support::{Isolation, RunningApp};

/// A running profile app and what a test needs to talk to it.
pub(crate) struct TestApp {
    app: RunningApp,
    database_url: String,
}

/// Builds the profile service with a random database and topology prefix, runs it, and
/// waits until `/readyz` says 200 (database migrated, queues declared and consumed).
pub(crate) async fn spawn_app() -> TestApp {
    let isolation = Isolation::new();
    let config = Config::try_parse_from(isolation.consumer_args("profile"))
        .expect("the test configuration parses");
    let app = profile::build(config)
        .await
        .expect("profile builds against the local PostgreSQL");
    let queues = profile::SERVICE
        .subscriptions
        .iter()
        .flat_map(|subscription| isolation.consumer_queues(subscription.queue))
        .collect();
    let cleanup = isolation.cleanup(isolation.topology("users"), queues);
    TestApp {
        app: RunningApp::start("profile", app, cleanup).await,
        database_url: isolation.database_url().to_owned(),
    }
}

impl TestApp {
    /// `GET /profiles/{user_id}`; `user_id` is text, so a test can send a malformed one.
    pub(crate) async fn get_profile(&self, user_id: &str) -> Response {
        self.get(&format!("/profiles/{user_id}")).await
    }

    /// A connection pool to the app's own database, migrated by the app, for tests of
    /// the store that need no broker.
    pub(crate) async fn db(&self) -> PgPool {
        PgPool::connect(&self.database_url)
            .await
            .expect("the app's database accepts connections")
    }

    /// `GET` an operational route: `/healthz`, `/readyz`.
    pub(crate) async fn get(&self, path: &str) -> Response {
        self.app.get(path).await
    }

    /// Stops the app as SIGTERM would and waits for it, then drops its database and
    /// deletes its queues and exchange. Call it at the end of every test; if a test
    /// panics first, `Drop` does the removal, best effort.
    pub(crate) async fn stop(self) {
        self.app.stop().await;
    }
}
