use std::time::Duration;

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use messaging::connection::BrokerStatus;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How long a readiness probe may wait for the database before calling it down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/readyz` checks: the service's database, and its broker link.
#[derive(Debug, Clone)]
pub struct Readiness {
    db: PgPool,
    broker: BrokerStatus,
}

impl Readiness {
    /// `broker` is the flag the service's broker session (consumer or relay) keeps up to
    /// date; reading it on every probe costs nothing.
    pub fn new(db: PgPool, broker: BrokerStatus) -> Self {
        Self { db, broker }
    }
}

/// `/healthz` (the process is alive: it answers), `/readyz` (it can do its work now:
/// database and broker usable; 503 otherwise, so a load balancer routes around it) and
/// `/metrics` (Prometheus text format).
///
/// These routes sit outside the request tracing layer: probes every few seconds would
/// otherwise bury the traces people come to look at.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "alive" })) }),
        )
        .route("/readyz", get(ready))
        .route(
            "/metrics",
            get(|| async { telemetry::metrics::prometheus().render() }),
        )
        .with_state(readiness)
}

/// What a service answers while it is starting (waiting for its database, running its
/// migrations), before its own routes exist: `/healthz` 200 (the process is alive and
/// answering), `/readyz` 503 naming what it waits for, `/metrics`, and a 503 problem with
/// `Retry-After` for anything else. Probes then see a starting service, not a hung one.
pub fn starting_router() -> Router {
    let waiting = || async {
        let body = json!({
            "status": "starting",
            "checks": { "database": "waiting", "broker": "waiting" },
        });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body))
    };
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "alive" })) }),
        )
        .route("/readyz", get(waiting))
        .route(
            "/metrics",
            get(|| async { telemetry::metrics::prometheus().render() }),
        )
        .fallback(|| async {
            let mut response = crate::problem::Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "starting",
                "the service is starting (waiting for its database); retry shortly",
            )
            .into_response();
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            response
        })
}

async fn ready(State(readiness): State<Readiness>) -> impl IntoResponse {
    let database = tokio::time::timeout(
        PROBE_TIMEOUT,
        sqlx::query("select 1").execute(&readiness.db),
    )
    .await
    .is_ok_and(|result| result.is_ok());
    let broker = readiness.broker.is_connected();
    let status = if database && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |up: bool| if up { "up" } else { "down" };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
        "checks": { "database": word(database), "broker": word(broker) },
    });
    (status, Json(body))
}

/// Every few seconds: samples the connection gauges (`db_pool_connections{state}`,
/// `broker_connected`) and the process' own (`process_*`, from `/proc`), and runs the Prometheus recorder's upkeep, which keeps its memory
/// bounded between scrapes (histogram samples are otherwise only drained by a scrape).
/// Stops with `shutdown`.
pub async fn run_metrics_upkeep(readiness: Readiness, shutdown: CancellationToken) {
    metrics::describe_gauge!(
        "db_pool_connections",
        "Connections in the service's database pool, by state (idle, in_use)."
    );
    metrics::describe_gauge!(
        "broker_connected",
        "1 while the service's broker session is up and its topology declared."
    );
    // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds,
    // process_threads, …: what an operator looks at first, named as Prometheus' own
    // client libraries name them.
    let process = metrics_process::Collector::default();
    process.describe();
    let handle = telemetry::metrics::prometheus();
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {
                let size = readiness.db.size();
                let idle = u32::try_from(readiness.db.num_idle()).unwrap_or(size);
                metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
                metrics::gauge!("db_pool_connections", "state" => "in_use").set(f64::from(size.saturating_sub(idle)));
                let connected = if readiness.broker.is_connected() { 1.0 } else { 0.0 };
                metrics::gauge!("broker_connected").set(connected);
                process.collect();
                handle.run_upkeep();
            }
        }
    }
}
