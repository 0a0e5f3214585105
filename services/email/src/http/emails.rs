//! `GET /emails?to=ADDRESS`: the welcome mails sent (or waiting to be sent) to an address.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use service_kit::error_body::ErrorBody;
use sqlx::PgPool;

use crate::store;

pub(super) fn router() -> Router<PgPool> {
    Router::new().route("/emails", get(list))
}

/// Addresses are stored as registration normalised them (trimmed, lower-case), so the
/// query is normalised the same way.
async fn list(State(db): State<PgPool>, Query(query): Query<HashMap<String, String>>) -> Response {
    let Some(to) = query
        .get("to")
        .map(|to| to.trim().to_lowercase())
        .filter(|to| !to.is_empty())
    else {
        return ErrorBody::for_field(
            "missing_parameter",
            "to",
            "query parameter `to` is required",
        )
        .with_status(StatusCode::BAD_REQUEST);
    };
    match store::mails_to(&db, &to).await {
        Ok(mails) => Json(mails).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "cannot list mails");
            ErrorBody::new("internal", "something went wrong; try again")
                .with_status(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}
