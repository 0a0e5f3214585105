//! `GET /profiles/{user_id}`: 200 with the profile, 404 until its event has been applied
//! and after the user was erased.

use axum::{Json, Router, extract::State};
use service_kit::{
    http_error::HttpError,
    openapi::{InternalError, Unavailable},
    path::Path,
    problem::{InputError, Problem},
};
use sqlx::PgPool;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::store::{self, Profile};

/// The API routes and `/openapi.json`; the skeleton adds request tracing and the
/// operational routes.
pub fn router(db: PgPool) -> Router {
    service_kit::openapi::serve_document(api(), db)
}

/// The profile service's OpenAPI document (served at `/openapi.json`, committed as
/// `docs/openapi/profile.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    service_kit::openapi::document(api())
}

fn api() -> OpenApiRouter<PgPool> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).routes(routes!(find))
}

/// The document's fixed parts; the paths come from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "profile",
        description = "Public profiles, projected from `user.registered.v1` events and erased on `user.deleted.v1`."
    ),
    components(
        schemas(Problem, InputError),
        responses(InternalError, Unavailable)
    ),
    tags((name = "profiles", description = "Public profiles"))
)]
struct ApiDoc;

/// A malformed id is a problem naming the parameter ([`service_kit::path::Path`]).
#[utoipa::path(
    get,
    path = "/profiles/{user_id}",
    tag = "profiles",
    summary = "A user's public profile",
    description = "404 until the user's `user.registered.v1` event has been applied, and again once their `user.deleted.v1` has.",
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
    State(db): State<PgPool>,
    Path(user_id): Path<Uuid>,
) -> Result<Json<Profile>, HttpError> {
    store::find(&db, user_id)
        .await?
        .map(Json)
        .ok_or_else(|| HttpError::not_found("no profile for this user (yet)"))
}
