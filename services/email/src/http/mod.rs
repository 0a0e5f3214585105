//! The HTTP API: `GET /emails?to=`.

mod emails;

use axum::{Router, middleware};
use sqlx::PgPool;

/// The API routes with request tracing.
pub fn router(db: PgPool) -> Router {
    emails::router()
        .with_state(db)
        .layer(middleware::from_fn(service_kit::trace_http::layer))
}
