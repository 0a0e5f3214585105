//! The skeleton of a consuming service: everything but its handler, its store and its
//! routes. A service declares a [`ConsumerService`] and its own settings, if any; its
//! `main` is then one call to [`ConsumerService::main`], and its `build` one call to
//! [`ConsumerService::build`] naming the event, the handler and the routes.

use std::{future::Future, sync::Arc};

use axum::Router;
use events::Event;
use messaging::{
    MessagingError,
    connection::BrokerStatus,
    consumer::{
        self, ConsumerConfig, Handler,
        args::{ConsumerArgs, ConsumerCommand},
    },
    dead_letters,
    topology::Topology,
};
use sqlx::{PgPool, migrate::Migrator};

use crate::{
    app::{App, StartError},
    config::{self, ServiceArgs, ServiceIdentity},
    inbox,
    ops_http::Readiness,
    postgres,
};

/// What tells one consuming service from another, besides its code.
#[derive(Debug)]
pub struct ConsumerService {
    /// Name and default port.
    pub identity: ServiceIdentity,
    /// The work queue it reads, without the test prefix, e.g. `email.user-registered`.
    pub queue: &'static str,
    /// The service's own migrations (the inbox is added to them).
    pub migrator: &'static Migrator,
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
    /// What only this service needs (the SMTP server, say).
    #[command(flatten)]
    pub own: Own,
}

/// The `Own` settings of a service that needs none beyond the shared ones.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct NoOwnSettings {}

impl ConsumerService {
    /// The whole `main` of a consuming binary: parse the configuration, run the `dlq` tool
    /// if asked for, else build the service with `build` and run it until SIGTERM.
    pub async fn main<Own, F, Fut>(&'static self, build: F) -> anyhow::Result<()>
    where
        Own: clap::Args,
        F: FnOnce(ConsumerServiceConfig<Own>) -> Fut,
        Fut: Future<Output = anyhow::Result<App>>,
    {
        let config: ConsumerServiceConfig<Own> = config::parse(self.identity);
        if let Some(command) = &config.consumer.command {
            return Ok(self.run_tool(&config.service, command).await?);
        }
        crate::runner::run(self.identity.name, |shutdown| async move {
            build(config).await?.run(shutdown).await?;
            Ok(())
        })
        .await
    }

    /// Builds the service: binds, prepares the database (the inbox and the service's own
    /// tables), then asks `parts` for the handler and the API routes, given the pool.
    pub async fn build<E, H, Own>(
        &self,
        config: &ConsumerServiceConfig<Own>,
        parts: impl FnOnce(PgPool) -> (H, Router),
    ) -> Result<App, StartError>
    where
        E: Event,
        H: Handler<E>,
        Own: clap::Args,
    {
        let (service, settings) = (&config.service, &config.consumer.settings);
        let app = App::bind(self.identity.name, service).await?;
        let pool = service.pool_settings();
        let migrator = inbox::with_inbox_migration(self.migrator);
        let db = postgres::connect(&service.database_url, &migrator, pool).await?;
        let (handler, routes) = parts(db.clone());

        let broker = BrokerStatus::default();
        let consumer = ConsumerConfig {
            amqp_url: service.amqp_url.clone(),
            topology: Topology::new(service.topology_prefix.clone()),
            queue: self.queue,
            prefetch: settings.prefetch,
            retry: settings.retry_policy(),
            trace_mode: settings.trace_mode,
        };
        let handler = Arc::new(handler);
        let status = broker.clone();
        Ok(app
            .api(routes)
            .ops(Readiness::new(db, broker))
            .task(move |shutdown| consumer::run::<E, H>(consumer, handler, status, shutdown)))
    }

    /// Runs a subcommand (the `dlq` tool) against this service's queues.
    pub async fn run_tool(
        &self,
        service: &ServiceArgs,
        command: &ConsumerCommand,
    ) -> Result<(), MessagingError> {
        match command {
            ConsumerCommand::Dlq(command) => {
                let dead_letters = Topology::new(service.topology_prefix.clone())
                    .queue_names(self.queue)
                    .dead_letter;
                dead_letters::run(&service.amqp_url, &dead_letters, command).await
            }
        }
    }
}
