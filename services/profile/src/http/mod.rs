//! The HTTP API: `GET /profiles/{user_id}`.

mod profiles;

use axum::{Router, middleware};
use sqlx::PgPool;

/// The API routes with request tracing.
pub fn router(db: PgPool) -> Router {
    profiles::router()
        .with_state(db)
        .layer(middleware::from_fn(service_kit::trace_http::layer))
}
