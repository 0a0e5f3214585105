//! The HTTP API. Each module owns its routes; this one merges them and adds the layers.

mod error;
mod idempotency;
mod users;

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::DefaultBodyLimit, middleware};
use sqlx::PgPool;
use tokio::sync::Notify;
use tower_http::timeout::TimeoutLayer;

pub use error::ApiError;

/// Largest accepted request body. A sign-up is a few hundred bytes; anything near this is
/// a mistake or an attack, and is answered 413 before it is read into memory.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// A request that takes longer than this is answered 408 rather than left hanging.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the handlers share. Cheap to clone: a pool handle and an `Arc`.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Registration's database.
    pub db: PgPool,
    /// Wakes the outbox relay after a commit, so a sign-up's event leaves at once instead
    /// of waiting for the next sweep.
    pub relay_wake: Arc<Notify>,
}

/// The API routes with request tracing, a body limit and a timeout.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(users::router())
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn(service_kit::trace_http::layer))
}
