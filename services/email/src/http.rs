//! `GET /emails?to=ADDRESS`: the welcome mails sent (or waiting to be sent) to an address.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    routing::get,
};
use service_kit::{http_error::HttpError, problem::Input};
use sqlx::PgPool;

use crate::store::{self, WelcomeMail};

/// The API routes; the skeleton adds request tracing and the operational routes.
pub fn router(db: PgPool) -> Router {
    Router::new().route("/emails", get(list)).with_state(db)
}

/// Addresses are stored as registration normalised them (trimmed, lower-case), so the
/// query is normalised the same way.
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
    Ok(Json(store::mails_to(&db, &to).await?))
}
