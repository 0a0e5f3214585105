//! `GET /emails?to=ADDRESS`: the welcome mails sent (or waiting to be sent) to an address.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
};
use service_kit::{
    http_error::HttpError,
    openapi::{InternalError, Unavailable},
    problem::{Input, InputError, Problem},
};
use sqlx::PgPool;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::store::{self, WelcomeMail};

/// The API routes and `/openapi.json`; the skeleton adds request tracing and the
/// operational routes.
pub fn router(db: PgPool) -> Router {
    service_kit::openapi::serve_document(api(), db)
}

/// The email service's OpenAPI document (served at `/openapi.json`, committed as
/// `docs/openapi/email.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    service_kit::openapi::document(api())
}

fn api() -> OpenApiRouter<PgPool> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).routes(routes!(list))
}

/// The document's fixed parts; the paths come from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "email",
        description = "Welcome mails: one per `user.registered.v1` event, sent once; a user's records erased on `user.deleted.v1`."
    ),
    components(
        schemas(Problem, InputError),
        responses(InternalError, Unavailable)
    ),
    tags((name = "emails", description = "The welcome mails sent"))
)]
struct ApiDoc;

/// Addresses are stored as registration normalised them (trimmed, lower-case), so the
/// query is normalised the same way.
#[utoipa::path(
    get,
    path = "/emails",
    tag = "emails",
    summary = "The welcome mails sent to an address",
    description = "The address is trimmed and lower-cased as registration stores it. An \
        address no mail went to gets an empty list.",
    params(("to" = String, Query, pattern = r"\S", description = "The recipient's address (not blank)")),
    responses(
        (status = 200, description = "The mails, `pending` until the SMTP server took them", body = Vec<WelcomeMail>),
        (status = 400, description = "no usable `to`", body = Problem, content_type = "application/problem+json"),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn list(
    State(db): State<PgPool>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<WelcomeMail>>, HttpError> {
    let to = query
        .get("to")
        .map(|to| to.trim().to_lowercase())
        .filter(|to| !to.is_empty())
        .ok_or_else(|| {
            HttpError::invalid_input(
                StatusCode::BAD_REQUEST,
                "missing_parameter",
                Input::Parameter("to".to_owned()),
                "query parameter `to` is required",
            )
        })?;
    // Registration refuses addresses with control characters, so none has mail; and
    // PostgreSQL refuses a NUL in text, which would make this a 500 (schemathesis found it).
    if to.chars().any(char::is_control) {
        return Ok(Json(Vec::new()));
    }
    Ok(Json(store::mails_to(&db, &to).await?))
}
