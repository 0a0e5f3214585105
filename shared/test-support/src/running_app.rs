//! A service app running in the test's process until the test stops it.

use std::time::{Duration, Instant};

use reqwest::Response;
use service_kit::app::App;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{PATIENCE, isolation::Cleanup};

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
    pub async fn stop(self) {
        self.stop_keeping().await.remove().await;
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
