//! Building the app (bind, database, state) and running it until shutdown.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::Router;
use messaging::{connection::BrokerStatus, topology::Topology};
use service_kit::{
    ops_http::{self, Readiness},
    postgres::{self, PoolSettings},
};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::Config,
    event_log,
    http::{self, AppState},
    outbox::{self, Relay},
};

/// The migrations, embedded in the binary so a deployment is one file.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A built, not yet running, registration service.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    router: Router,
    relay: Relay,
    readiness: Readiness,
    retention: (Duration, Duration),
    shutdown_timeout: Duration,
}

impl App {
    /// Binds the listener, prepares the database and assembles the routes and the relay.
    /// Fails if the address is taken or the database cannot be made ready.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.http_addr))?;
        let settings = PoolSettings {
            max_connections: config.database_max_connections,
            ..PoolSettings::default()
        };
        let db = postgres::connect(&config.database_url, &MIGRATOR, settings)
            .await
            .context("cannot prepare the registration database")?;

        let relay = Relay {
            db: db.clone(),
            amqp_url: config.amqp_url.clone(),
            topology: Topology::new(config.topology_prefix.clone()),
            batch_size: config.outbox_batch_size,
            sweep_interval: config.outbox_sweep_interval(),
            wake: Arc::new(Notify::new()),
            status: BrokerStatus::default(),
        };
        let status = relay.status.clone();
        let readiness = Readiness::new(db.clone(), move || status.is_connected());
        let router = routes(
            db,
            &relay,
            readiness.clone(),
            config.max_concurrent_requests,
        );
        Ok(Self {
            listener,
            router,
            relay,
            readiness,
            retention: (
                config.event_log_retention(),
                Duration::from_secs(config.event_log_cleanup_interval_secs),
            ),
            shutdown_timeout: Duration::from_secs(config.shutdown_timeout_secs),
        })
    }

    /// The bound address (the real port when built with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves HTTP and runs the relay until `shutdown`, then waits for both to drain.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr()?, "registration listening");
        describe_metrics();
        let tasks = TaskTracker::new();
        tasks.spawn(outbox::report_backlog(
            self.relay.db.clone(),
            shutdown.clone(),
        ));
        let (retention, cleanup_interval) = self.retention;
        tasks.spawn(event_log::run_retention(
            self.relay.db.clone(),
            retention,
            cleanup_interval,
            shutdown.clone(),
        ));
        tasks.spawn(self.relay.run(shutdown.clone()));
        tasks.spawn(ops_http::run_metrics_upkeep(
            self.readiness,
            shutdown.clone(),
        ));
        service_kit::server::serve_and_drain(
            self.listener,
            self.router,
            tasks,
            shutdown,
            self.shutdown_timeout,
        )
        .await
        .context("HTTP server failed")
    }
}

fn routes(db: PgPool, relay: &Relay, readiness: Readiness, max_in_flight: usize) -> Router {
    let state = AppState {
        db,
        relay_wake: relay.wake.clone(),
    };
    http::router(state, max_in_flight).merge(ops_http::router(readiness))
}

/// HELP texts, and the counters at 0 from the start so `rate()` and dashboards see them
/// before the first sign-up or the first failed publish.
fn describe_metrics() {
    use events::Event as _;
    metrics::describe_counter!("users_registered_total", "Sign-ups committed.");
    metrics::describe_counter!("events_published_total", "Events the broker confirmed.");
    metrics::describe_counter!(
        "events_publish_failed_total",
        "Publishes that failed and stay in the outbox for a retry."
    );
    metrics::describe_gauge!(
        "outbox_backlog_events",
        "Events committed but not yet published."
    );
    metrics::describe_gauge!(
        "outbox_oldest_unpublished_age_seconds",
        "Age of the oldest unpublished event."
    );
    metrics::counter!("users_registered_total").increment(0);
    // One line per event type registration emits.
    let event_type = events::UserRegisteredV1::TYPE;
    metrics::counter!("events_published_total", "event_type" => event_type).increment(0);
    metrics::counter!("events_publish_failed_total", "event_type" => event_type).increment(0);
}
