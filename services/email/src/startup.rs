//! Building the app (bind, database, SMTP client) and running it until shutdown.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::Router;
use events::UserRegisteredV1;
use messaging::{
    connection::BrokerStatus,
    consumer::{self, ConsumerConfig},
    topology::Topology,
};
use service_kit::{
    ops_http::{self, Readiness},
    postgres::{self, PoolSettings},
};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{config::Config, http, mailer::Mailer, welcome::WelcomeHandler};

/// The migrations, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The queue this service reads, without the test prefix.
pub const QUEUE: &str = "email.user-registered";

/// A built, not yet running, email service.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    router: Router,
    consumer: ConsumerConfig,
    handler: Arc<WelcomeHandler>,
    broker: BrokerStatus,
    readiness: Readiness,
    shutdown_timeout: Duration,
}

impl App {
    /// Binds the listener, prepares the database and the SMTP client.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.http_addr))?;
        let mailer = Mailer::new(&config.smtp_url, &config.mail_from)?;
        let settings = PoolSettings {
            // Each in-flight message may hold a connection while it sends.
            max_connections: u32::from(config.consumer.prefetch) + 4,
            ..PoolSettings::default()
        };
        let db = postgres::connect(&config.database_url, &MIGRATOR, settings)
            .await
            .context("cannot prepare the email database")?;

        let broker = BrokerStatus::default();
        let status = broker.clone();
        let readiness = Readiness::new(db.clone(), move || status.is_connected());
        let router = http::router(db.clone()).merge(ops_http::router(readiness.clone()));
        let shutdown_timeout = Duration::from_secs(config.shutdown_timeout_secs);
        let consumer = ConsumerConfig {
            retry: config.consumer.retry_policy(),
            amqp_url: config.amqp_url,
            topology: Topology::new(config.topology_prefix),
            queue: QUEUE,
            prefetch: config.consumer.prefetch,
            trace_mode: config.consumer.trace_mode,
        };
        let handler = Arc::new(WelcomeHandler { db, mailer });
        Ok(Self {
            listener,
            router,
            consumer,
            handler,
            broker,
            readiness,
            shutdown_timeout,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves HTTP and consumes until `shutdown`, then waits for in-flight work.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr()?, "email listening");
        metrics::describe_counter!(
            "welcome_mails_sent_total",
            "Welcome mails the SMTP server accepted."
        );
        metrics::counter!("welcome_mails_sent_total").increment(0);
        let tasks = TaskTracker::new();
        tasks.spawn(consumer::run::<UserRegisteredV1, _>(
            self.consumer,
            self.handler,
            self.broker,
            shutdown.clone(),
        ));
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
