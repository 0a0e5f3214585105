//! The HTTP API: `GET /emails?to=`.

mod emails;

use axum::Router;
use sqlx::PgPool;

/// The API routes; the skeleton adds request tracing and the operational routes.
pub fn router(db: PgPool) -> Router {
    emails::router().with_state(db)
}
