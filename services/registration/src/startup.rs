//! Building the service: the database, the API, the outbox relay and the upkeep of the
//! event log and the idempotency keys, on the skeleton every service shares (`service_kit::app`).

use anyhow::Context;
use messaging::{connection::BrokerStatus, topology::Topology};
use service_kit::{app::App, ops_http::Readiness, postgres, retention};

use crate::{
    config::{Config, IDENTITY},
    http::{self, AppState, rate_limit::SignUpRateLimit},
    outbox::{self, Relay, RelayWakeUp},
    sign_ups::SignUps,
    store,
};

/// The migrations, embedded in the binary so a deployment is one file.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Binds the listener, prepares the database and assembles the routes, the relay and
/// the upkeep tasks. Fails if the address is taken or the database cannot be made ready.
pub async fn build(config: Config) -> anyhow::Result<App> {
    let app = App::bind(IDENTITY.name, &config.service).await?;
    let settings = config.service.pool_settings();
    let db = postgres::connect(&config.service.database_url, &MIGRATOR, settings)
        .await
        .context("cannot prepare the registration database")?;

    let pii = config.service.pii.sealer()?;
    let sealed = store::seal_all(&db, &pii)
        .await
        .context("cannot seal the stored personal data under the current key")?;
    if sealed > 0 {
        tracing::info!(
            rows = sealed,
            "sealed stored personal data under the current key"
        );
    }
    let wake = RelayWakeUp::default();
    let status = BrokerStatus::default();
    let relay = Relay {
        db: db.clone(),
        amqp_url: config.service.amqp_url.clone(),
        topology: Topology::new(config.service.topology_prefix.clone()),
        batch_size: config.outbox.outbox_batch_size,
        sweep_interval: config.outbox.sweep_interval(),
        wake: wake.clone(),
        status: status.clone(),
        pii: pii.clone(),
    };
    let state = AppState {
        db: db.clone(),
        sign_ups: SignUps::new(db.clone(), config.max_concurrent_requests),
        relay_wake: wake,
        pii,
    };
    let retentions = vec![
        outbox::retention::event_log(config.outbox.event_log_retention()),
        store::idempotency_keys(config.idempotency_key_retention()),
    ];
    let cleanup_interval = config.outbox.cleanup_interval();
    let (backlog_db, retention_db) = (db.clone(), db.clone());
    let rate_limit = SignUpRateLimit::new(&config.rate_limit);
    let app = match rate_limit.clone() {
        Some(limit) => app.task(move |shutdown| limit.forget_idle_clients(shutdown)),
        None => app,
    };
    Ok(app
        .api(http::router(
            state,
            config.max_concurrent_requests,
            rate_limit,
        ))
        .ops(Readiness::new(db, status))
        .task(move |shutdown| relay.run(shutdown))
        .task(move |shutdown| outbox::report_backlog(backlog_db, shutdown))
        .task(move |shutdown| retention::run(retention_db, retentions, cleanup_interval, shutdown)))
}
