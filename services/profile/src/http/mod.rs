//! The HTTP API: `GET /profiles/{user_id}`.

mod profiles;

use axum::Router;
use sqlx::PgPool;

/// The API routes; the skeleton adds request tracing and the operational routes.
pub fn router(db: PgPool) -> Router {
    profiles::router().with_state(db)
}
