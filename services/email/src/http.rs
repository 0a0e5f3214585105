//! `GET /emails?to=ADDRESS`: the welcome mails sent (or waiting to be sent) to an address.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
};
use service_kit::{
    consumer_service::ApiState,
    http_error::HttpError,
    openapi::{InternalError, Unavailable},
    problem::{Input, Problem},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::store::{self, WelcomeMail};

/// The welcome mails sent to an address
///
/// The address is trimmed and lower-cased as registration stores it. An address no mail
/// went to gets an empty list.
#[utoipa::path(
    get,
    path = "/emails",
    tag = "emails",
    params(("to" = String, Query, pattern = r"\S", description = "The recipient's address (not blank)")),
    responses(
        (status = 200, description = "The mails, `pending` until the SMTP server took them", body = Vec<WelcomeMail>),
        (status = 400, description = "no usable `to`", body = Problem, content_type = "application/problem+json"),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn list(
    State(state): State<ApiState>,
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
    Ok(Json(store::mails_to(&state.db, &state.pii, &to).await?))
}

/// The documented routes (the skeleton serves them with `/openapi.json`, request tracing
/// and the operational routes; the drift test reads their document).
pub fn api() -> OpenApiRouter<ApiState> {
    service_kit::openapi::routes(&crate::SERVICE.identity).routes(routes!(list))
}
