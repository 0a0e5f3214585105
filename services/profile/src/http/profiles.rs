//! `GET /profiles/{user_id}`: 200 with the profile, 404 until its event has been applied.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use service_kit::error_body::ErrorBody;
use sqlx::PgPool;
use uuid::Uuid;

use crate::store;

pub(super) fn router() -> Router<PgPool> {
    Router::new().route("/profiles/{user_id}", get(find))
}

/// The id is taken as text and parsed here, so a malformed id gets our JSON error body.
async fn find(State(db): State<PgPool>, Path(user_id): Path<String>) -> Response {
    let Ok(user_id) = Uuid::parse_str(&user_id) else {
        return ErrorBody::for_field("invalid_id", "user_id", "user_id must be a UUID")
            .with_status(StatusCode::BAD_REQUEST);
    };
    match store::find(&db, user_id).await {
        Ok(Some(profile)) => Json(profile).into_response(),
        Ok(None) => ErrorBody::new("not_found", "no profile for this user (yet)")
            .with_status(StatusCode::NOT_FOUND),
        Err(error) => {
            tracing::error!(error = %error, "cannot read profile");
            ErrorBody::new("internal", "something went wrong; try again")
                .with_status(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}
