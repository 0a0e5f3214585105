//! Profile: a read model of users, built from `user.registered.v1`, served over HTTP.
//!
//! It never reads registration's database; everything it knows came as an event. The
//! consuming-service skeleton (`service_kit::consumer_service`) does the rest: the
//! configuration, the database with its inbox, the consume loop, `/healthz`, `/readyz`,
//! `/metrics` and the graceful shutdown.
//!
//! # Layout
//! - [`projection`]: the event handler that turns events into profile rows.
//! - [`store`]: SQL for profiles.
//! - [`http`]: `GET /profiles/{user_id}`.

/// `GET /profiles/{user_id}`.
pub mod http;
/// The event handler that projects events into profiles.
pub mod projection;
/// SQL for profiles.
pub mod store;

use events::UserRegisteredV1;
use service_kit::{
    app::App,
    config::ServiceIdentity,
    consumer_service::{ConsumerService, ConsumerServiceConfig, NoOwnSettings},
};

use crate::projection::ProfileProjection;

/// The profile service: its name, port, queue and tables (the inbox comes from service-kit).
pub static SERVICE: ConsumerService = ConsumerService {
    identity: ServiceIdentity::new(
        "profile",
        8082,
        "Profile read model built from user.registered events",
    ),
    queue: "profile.user-registered",
    migrator: &sqlx::migrate!("./migrations"),
};

/// The profile service's configuration: the shared settings only.
pub type Config = ConsumerServiceConfig<NoOwnSettings>;

/// Builds the service: the skeleton with the projection and its routes.
pub async fn build(config: Config) -> anyhow::Result<App> {
    let concurrency = usize::from(config.consumer.settings.prefetch);
    let app = SERVICE
        .build::<UserRegisteredV1, _, _>(&config, |db| {
            let projection = ProfileProjection::new(db.clone(), concurrency);
            (projection, http::router(db))
        })
        .await?;
    Ok(app)
}
