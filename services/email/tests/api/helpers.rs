//! `spawn_app`: the email service built in this process by its own `email::build`, on
//! port 0, with a database and broker names of its own, and the `TestApp` tests drive it
//! with. Running it, waiting for it and removing what it created are `test_support`'s.

use clap::Parser;
use email::Config;
use reqwest::Response;
use test_support::{Isolation, RunningApp};

/// A running email app and what a test needs to talk to it.
pub(crate) struct TestApp {
    app: RunningApp,
}

/// Builds the email service with a random database and topology prefix, runs it, and
/// waits until `/readyz` says 200 (database migrated, queues declared and consumed).
/// The SMTP server is never reached: no event is published, and the mailer connects
/// lazily.
pub(crate) async fn spawn_app() -> TestApp {
    let isolation = Isolation::new();
    let config = Config::try_parse_from(isolation.consumer_args("email"))
        .expect("the test configuration parses");
    let app = email::build(config)
        .await
        .expect("email builds against the local PostgreSQL");
    let queues = email::SERVICE
        .subscriptions
        .iter()
        .flat_map(|subscription| isolation.consumer_queues(subscription.queue))
        .collect();
    let cleanup = isolation.cleanup(isolation.topology("users"), queues);
    TestApp {
        app: RunningApp::start("email", app, cleanup).await,
    }
}

impl TestApp {
    /// `GET /emails`, with `?to=<to>` when `to` is given (encoded as a query should be).
    pub(crate) async fn get_emails(&self, to: Option<&str>) -> Response {
        let mut request = self.app.http().get(self.app.url("/emails"));
        if let Some(to) = to {
            request = request.query(&[("to", to)]);
        }
        request.send().await.expect("email answers")
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
