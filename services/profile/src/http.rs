//! `GET /profiles/{user_id}`: 200 with the profile, 404 until its event has been applied
//! and after the user was erased.

use axum::{Json, extract::State};
use service_kit::{
    consumer_service::ApiState,
    http_error::HttpError,
    openapi::{InternalError, Unavailable},
    path::Path,
    problem::Problem,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::store::{self, Profile};

/// A user's public profile
///
/// 404 until the user's `user.registered.v1` event has been applied, and again once their
/// `user.deleted.v1` has.
#[utoipa::path(
    get,
    path = "/profiles/{user_id}",
    tag = "profiles",
    params(("user_id" = Uuid, Path, description = "The user's id, as registration assigned it")),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 400, description = "`user_id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no profile for this user (yet, or any more: erased)", body = Problem, content_type = "application/problem+json"),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn find(
    State(state): State<ApiState>,
    Path(user_id): Path<Uuid>,
) -> Result<Json<Profile>, HttpError> {
    store::find(&state.db, &state.pii, user_id)
        .await?
        .map(Json)
        .ok_or_else(|| HttpError::not_found("no profile for this user (yet)"))
}

/// The documented routes (the skeleton serves them with `/openapi.json`, request tracing
/// and the operational routes; the drift test reads their document).
pub fn api() -> OpenApiRouter<ApiState> {
    service_kit::openapi::routes(&crate::SERVICE.identity).routes(routes!(find))
}
