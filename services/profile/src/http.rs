//! `GET /profiles/{user_id}`: 200 with the profile, 404 until its event has been applied.

use axum::{Json, Router, extract::State, routing::get};
use service_kit::{http_error::HttpError, path::Path};
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::{self, Profile};

/// The API routes; the skeleton adds request tracing and the operational routes.
pub fn router(db: PgPool) -> Router {
    Router::new()
        .route("/profiles/{user_id}", get(find))
        .with_state(db)
}

/// A malformed id is a problem naming the parameter ([`service_kit::path::Path`]).
async fn find(
    State(db): State<PgPool>,
    Path(user_id): Path<Uuid>,
) -> Result<Json<Profile>, HttpError> {
    store::find(&db, user_id)
        .await?
        .map(Json)
        .ok_or_else(|| HttpError::not_found("no profile for this user (yet)"))
}
