//! The skeleton of a consuming service: everything but its handlers, its store and its
//! routes. A service declares a [`ConsumerService`] (which event types it reads, from which
//! queues) and its own settings, if any; its `main` is then one call to
//! [`ConsumerService::main`], and its `build` one call to [`ConsumerService::build`] giving
//! a handler per event type ([`Handlers`]) and the routes.
//!
//! Each event type has its own work queue, consumed concurrently with the others on the
//! service's one broker connection. Events of one user can therefore be handled in any
//! order (they could anyway: retries through delay queues and redrives overtake); the
//! handlers order them by the envelope's per-user `sequence`.

// Subscriptions and handlers.
mod handlers;

use std::{future::Future, time::Duration};

use messaging::{
    MessagingError,
    connection::BrokerStatus,
    consumer::{
        self, ConsumerConfig, QueueConsumer,
        args::{ConsumerArgs, ConsumerCommand},
    },
    dead_letters,
    topology::Topology,
};
use sqlx::{PgPool, migrate::Migrator};

use utoipa_axum::router::OpenApiRouter;

use handlers::MakeConsumer;
pub use handlers::{Handlers, Subscription};

use crate::{
    app::{App, StartError},
    config::{self, ServiceArgs, ServiceIdentity},
    inbox,
    ops_http::Readiness,
    pii::{SealedTable, Sealer},
    postgres,
    retention::{self, Retention},
    secrets::{ResolveSecrets, SecretError},
};

/// What tells one consuming service from another, besides its code.
#[derive(Debug)]
pub struct ConsumerService {
    /// Name and default port.
    pub identity: ServiceIdentity,
    /// The event types it handles, each with its work queue: the one place that says
    /// which queue carries what (the `dlq` tool and the AsyncAPI test read it too).
    pub subscriptions: &'static [Subscription],
    /// The service's own migrations (the inbox is added to them).
    pub migrator: &'static Migrator,
    /// Its tables that hold personal data: sealed under the current key at start, before
    /// the consumers run ([`SealedTable::reseal`]).
    pub sealed_tables: &'static [&'static SealedTable],
}

/// What a consuming service's HTTP handlers share: its database, and the sealer that opens
/// the personal data stored in it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The service's database.
    pub db: PgPool,
    /// Opens what the handlers read (and hashes what they look up by).
    pub pii: Sealer,
}

/// A consuming service's configuration: what every service has, what every consumer has,
/// and the service's `Own` settings (a `clap::Args` struct, [`NoOwnSettings`] if none).
/// Every field is a flag and an environment variable.
#[derive(Debug, Clone, clap::Parser)]
pub struct ConsumerServiceConfig<Own: clap::Args> {
    /// Listen address, database, broker, shutdown.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Prefetch, retries, trace mode, and the `dlq` subcommand.
    #[command(flatten)]
    pub consumer: ConsumerArgs,
    /// How long the inbox remembers an event.
    #[command(flatten)]
    pub inbox: InboxSettings,
    /// What only this service needs (the SMTP server, say).
    #[command(flatten)]
    pub own: Own,
}

/// The inbox's retention, as flags and variables.
#[derive(Debug, Clone, clap::Args)]
pub struct InboxSettings {
    /// How long the inbox remembers an event, in days. Keep it longer than the producer's
    /// event log (`EVENT_LOG_RETENTION_DAYS`, 30) and than a message may wait in a
    /// dead-letter queue: an event replayed or redriven after its inbox row is gone is
    /// handled again (the per-user `sequence` still keeps it from changing anything).
    #[arg(long, env = "INBOX_RETENTION_DAYS", default_value_t = 45)]
    pub inbox_retention_days: u64,
    /// How often expired inbox rows are purged, in seconds.
    #[arg(long, env = "INBOX_CLEANUP_INTERVAL_SECS", default_value_t = 3_600)]
    pub inbox_cleanup_interval_secs: u64,
}

impl InboxSettings {
    /// The inbox's retention.
    fn retention(&self) -> Retention {
        let days = self.inbox_retention_days.saturating_mul(24 * 3600);
        inbox::retention(Duration::from_secs(days))
    }

    /// How often the cleanup runs.
    fn cleanup_interval(&self) -> Duration {
        Duration::from_secs(self.inbox_cleanup_interval_secs)
    }
}

impl<Own: clap::Args + ResolveSecrets> ResolveSecrets for ConsumerServiceConfig<Own> {
    fn resolve_secrets(&mut self) -> Result<(), SecretError> {
        self.service.resolve_secrets()?;
        self.own.resolve_secrets()
    }
}

/// The `Own` settings of a service that needs none beyond the shared ones.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct NoOwnSettings {}

impl ResolveSecrets for NoOwnSettings {
    fn resolve_secrets(&mut self) -> Result<(), SecretError> {
        Ok(())
    }
}

impl ConsumerService {
    /// The whole `main` of a consuming binary: parse the configuration, run the `dlq` tool
    /// if asked for, else build the service with `build` and run it until SIGTERM.
    pub async fn main<Own, F, Fut>(&'static self, build: F) -> anyhow::Result<()>
    where
        Own: clap::Args + ResolveSecrets,
        F: FnOnce(ConsumerServiceConfig<Own>) -> Fut,
        Fut: Future<Output = anyhow::Result<App>>,
    {
        let config: ConsumerServiceConfig<Own> = config::parse(self.identity);
        if let Some(command) = &config.consumer.command {
            return Ok(self.run_tool(&config.service, command).await?);
        }
        crate::runner::serve(self.identity.name, build(config)).await
    }

    /// Builds the service: binds, prepares the database (the inbox and the service's own
    /// tables), then asks `parts` for the handlers and the API routes, given the pool. The
    /// inbox's cleanup runs beside the consumers.
    /// Every subscription needs exactly one handler and every handler a subscription, or
    /// the service does not start.
    pub async fn build<Own: clap::Args>(
        &self,
        config: &ConsumerServiceConfig<Own>,
        parts: impl FnOnce(PgPool, Sealer) -> (Handlers, OpenApiRouter<ApiState>),
    ) -> Result<App, StartError> {
        let (service, settings) = (&config.service, &config.consumer.settings);
        let app = App::bind(self.identity.name, service).await?;
        let pool = service.pool_settings();
        let migrator = inbox::with_inbox_migration(self.migrator);
        let db = postgres::connect(&service.database_url, &migrator, pool).await?;
        let pii = service.pii.sealer()?;
        for table in self.sealed_tables {
            let changed = table.reseal(&db, &pii).await?;
            if changed > 0 {
                tracing::info!(
                    table = table.table,
                    rows = changed,
                    "sealed under the current key"
                );
            }
        }
        let (handlers, api) = parts(db.clone(), pii.clone());
        let routes = crate::openapi::serve_document(
            api,
            ApiState {
                db: db.clone(),
                pii,
            },
        );
        let consumers = self.pair(handlers)?;

        let topology = Topology::new(service.topology_prefix.clone());
        let consumers: Vec<QueueConsumer> = consumers
            .into_iter()
            .map(|(subscription, make)| {
                make(ConsumerConfig {
                    topology: topology.clone(),
                    queue: subscription.queue,
                    prefetch: settings.prefetch,
                    retry: settings.retry_policy(),
                    trace_mode: settings.trace_mode,
                    declare_shared_exchanges: settings.declare_shared_exchanges,
                })
            })
            .collect();
        let broker = BrokerStatus::default();
        let status = broker.clone();
        let amqp_url = service.amqp_url.clone();
        let (inbox_retention, cleanup_interval) =
            (config.inbox.retention(), config.inbox.cleanup_interval());
        let cleanup_db = db.clone();
        Ok(app
            .api(routes)
            .ops(Readiness::new(db, broker))
            .task(move |shutdown| async move {
                consumer::run(&amqp_url, consumers, status, shutdown).await;
            })
            .task(move |shutdown| {
                retention::run(
                    cleanup_db,
                    vec![inbox_retention],
                    cleanup_interval,
                    shutdown,
                )
            }))
    }

    /// Each subscription with its handler's consume loop, in the subscriptions' order.
    fn pair(&self, handlers: Handlers) -> Result<Vec<(Subscription, MakeConsumer)>, StartError> {
        let mut consumers = handlers.consumers;
        let mut paired = Vec::with_capacity(self.subscriptions.len());
        for subscription in self.subscriptions {
            let position = consumers
                .iter()
                .position(|(event_type, _)| *event_type == subscription.event_type)
                .ok_or_else(|| {
                    StartError::Wiring(format!(
                        "no handler for {} (queue {})",
                        subscription.event_type, subscription.queue
                    ))
                })?;
            let (_, make) = consumers.swap_remove(position);
            paired.push((*subscription, make));
        }
        if let Some((event_type, _)) = consumers.first() {
            return Err(StartError::Wiring(format!(
                "a handler for {event_type}, which no subscription names (or two handlers for it)"
            )));
        }
        Ok(paired)
    }

    /// Runs a subcommand (the `dlq` tool) against this service's queues: each of its
    /// dead-letter queues in turn (`dlq list` prints each message's original queue).
    pub async fn run_tool(
        &self,
        service: &ServiceArgs,
        command: &ConsumerCommand,
    ) -> Result<(), MessagingError> {
        match command {
            ConsumerCommand::Dlq(command) => {
                let topology = Topology::new(service.topology_prefix.clone());
                let dead_letters: Vec<String> = self
                    .subscriptions
                    .iter()
                    .map(|subscription| topology.queue_names(subscription.queue).dead_letter)
                    .collect();
                dead_letters::run(&service.amqp_url, &dead_letters, command).await
            }
        }
    }
}

#[cfg(test)]
mod tests;
