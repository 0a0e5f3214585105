//! `GET /profiles/{user_id}`: 200 with the profile, 404 until its event has been applied.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::get,
};
use service_kit::http_error::HttpError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::{self, Profile};

/// The API routes; the skeleton adds request tracing and the operational routes.
pub fn router(db: PgPool) -> Router {
    Router::new()
        .route("/profiles/{user_id}", get(find))
        .with_state(db)
}

/// The id is taken as text and parsed here, so a malformed id gets our JSON error body.
async fn find(
    State(db): State<PgPool>,
    Path(user_id): Path<String>,
) -> Result<Json<Profile>, HttpError> {
    let user_id = Uuid::parse_str(&user_id).map_err(|_| {
        HttpError::invalid_field(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "user_id",
            "user_id must be a UUID",
        )
    })?;
    store::find(&db, user_id)
        .await?
        .map(Json)
        .ok_or_else(|| HttpError::not_found("no profile for this user (yet)"))
}
