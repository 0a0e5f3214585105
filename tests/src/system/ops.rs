//! The operational endpoints every service has: `/healthz`, `/readyz` and `/metrics`.
//!
//! Apart from the typed API clients because they are the same for all three services
//! and for every instance, and because tests read them to learn what a service did
//! internally (how many deliveries it retried), not what it offers to users.

use reqwest::{Response, StatusCode};

use crate::eventually::{PATIENCE, eventually};

use super::{api::Endpoint, options::Service};

/// One service instance's probes and metrics.
#[derive(Debug, Clone)]
pub struct Ops<'a> {
    /// Which service, for messages.
    service: Service,
    /// Where it listens.
    endpoint: Endpoint<'a>,
}

impl<'a> Ops<'a> {
    /// The probes and metrics of the instance at `endpoint`.
    pub(super) fn new(service: Service, endpoint: Endpoint<'a>) -> Self {
        Self { service, endpoint }
    }

    /// The full URL of `path` on this instance, for tools that make their own requests.
    pub fn url(&self, path: &str) -> String {
        self.endpoint.url(path)
    }

    /// `GET <path>`, e.g. `/healthz` or `/readyz`; fails the test if there is no answer.
    pub async fn get(&self, path: &str) -> Response {
        self.endpoint.get(path).await
    }

    /// `GET <path>`, with no answer as an error rather than a failure: for describing a
    /// service that may be down.
    pub async fn try_get(&self, path: &str) -> reqwest::Result<Response> {
        self.endpoint
            .request(reqwest::Method::GET, path)
            .send()
            .await
    }

    /// Polls `GET <path>` until it answers `expected`; fails the test after
    /// [`PATIENCE`] with the last answer.
    pub async fn wait_for_status(&self, path: &str, expected: StatusCode) {
        let what = format!("{} {path} to answer {expected}", self.service.name());
        eventually(what, PATIENCE, async || {
            let status = self.get(path).await.status();
            if status == expected {
                Ok(())
            } else {
                Err(status)
            }
        })
        .await;
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .await
            .text()
            .await
            .expect("a text body from /metrics")
    }

    /// The value of one series, e.g.
    /// `events_consumed_total{queue="email.user-registered",outcome="done"}`; 0 if the
    /// series is not there (a counter that never moved need not be exported).
    pub async fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find_map(|line| {
                let value = line.strip_prefix(series)?.strip_prefix(' ')?;
                value.trim().parse().ok()
            })
            .unwrap_or(0.0)
    }

    /// Scrapes `/metrics` until every line in `expected` is in it (counters move right
    /// after the effect a test waited for) and returns the scrape; fails the test after
    /// [`PATIENCE`] with the last scrape.
    pub async fn wait_for_metrics(&self, expected: &[&str]) -> String {
        let what = format!(
            "{} /metrics to show all of {expected:?}",
            self.service.name()
        );
        eventually(what, PATIENCE, async || {
            let text = self.metrics().await;
            if expected.iter().all(|line| text.contains(line)) {
                Ok(text)
            } else {
                Err(text)
            }
        })
        .await
    }
}
