//! Profile: a read model of users, built from `user.registered.v1` and erased by
//! `user.deleted.v1`, served over HTTP.
//!
//! It never reads registration's database; everything it knows came as an event. The
//! consuming-service skeleton (`service_kit::consumer_service`) does the rest: the
//! configuration, the database with its inbox, the consume loop, `/healthz`, `/readyz`,
//! `/metrics` and the graceful shutdown.
//!
//! # Layout
//! - [`projection`]: the event handlers that turn events into profile rows (and tombstones).
//! - [`store`]: SQL for profiles.
//! - [`http`]: `GET /profiles/{user_id}`.

// `GET /profiles/{user_id}`.
pub mod http;
// The event handlers that project events into profiles.
pub mod projection;
// SQL for profiles.
pub mod store;

use std::sync::Arc;

use events::{Event, UserDeletedV1, UserRegisteredV1};
use service_kit::{
    app::App,
    config::ServiceIdentity,
    consumer_service::{
        ConsumerService, ConsumerServiceConfig, Handlers, NoOwnSettings, Subscription,
    },
};

use crate::projection::ProfileProjection;

/// The profile service: its name, port, queues and tables (the inbox comes from
/// service-kit).
pub static SERVICE: ConsumerService = ConsumerService {
    identity: ServiceIdentity::new(
        "profile",
        8082,
        "Public profiles, projected from `user.registered.v1` events and erased on `user.deleted.v1`.",
    ),
    subscriptions: &[
        Subscription::new("profile.user-registered", UserRegisteredV1::TYPE),
        Subscription::new("profile.user-deleted", UserDeletedV1::TYPE),
    ],
    migrator: &sqlx::migrate!("./migrations"),
    sealed_tables: &[&store::PROFILES],
};

/// The profile service's configuration: the shared settings only.
pub type Config = ConsumerServiceConfig<NoOwnSettings>;

/// Builds the service: the skeleton with the projection and its routes.
pub async fn build(config: Config) -> anyhow::Result<App> {
    let concurrency = usize::from(config.consumer.settings.prefetch);
    let app = SERVICE
        .build(&config, |db, pii| {
            let projection = Arc::new(ProfileProjection::new(db.clone(), pii, concurrency));
            let handlers = Handlers::default()
                .on::<UserRegisteredV1, _>(projection.clone())
                .on::<UserDeletedV1, _>(projection);
            (handlers, http::api())
        })
        .await?;
    Ok(app)
}
