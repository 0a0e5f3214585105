//! The HTTP API. Each module owns its routes; this one merges them and adds the layers.

mod error;
mod idempotency;
pub mod rate_limit;
mod users;

use axum::{
    BoxError, Router,
    error_handling::HandleErrorLayer,
    extract::DefaultBodyLimit,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use service_kit::{pii::Sealer, problem::Problem};
use sqlx::PgPool;
use tower::ServiceBuilder;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;

use crate::{outbox::RelayWakeUp, sign_ups::SignUps};

/// Largest accepted request body. A sign-up is a few hundred bytes; anything near this is
/// a mistake or an attack, and is answered 413 before it is read into memory.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the handlers share. Cheap to clone: handles to a pool, a task and an `Arc`.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Registration's database.
    pub db: PgPool,
    /// The sign-ups' shared writer (group commit).
    pub sign_ups: SignUps,
    /// Wakes this process's outbox relay after a commit, so a sign-up's event leaves at
    /// once instead of waiting for the next sweep. In-process, not PostgreSQL `NOTIFY`:
    /// see [`RelayWakeUp`].
    pub relay_wake: RelayWakeUp,
    /// Seals the users' personal data before it is written, opens it when read back.
    pub pii: Sealer,
}

/// The API routes with a per-client sign-up limit, load shedding and a body limit (the
/// skeleton adds the request tracing and the timeout around them, and the operational
/// routes beside them).
///
/// A client over `rate_limit` is answered 429 before anything else is done for it
/// ([`rate_limit`]). At most `max_in_flight` requests are handled at once; beyond that a
/// request is answered 503 with `Retry-After` at once rather than queued, so a burst
/// cannot pile up unbounded work (and memory) behind a slow database.
pub fn router(
    state: AppState,
    max_in_flight: usize,
    rate_limit: Option<rate_limit::SignUpRateLimit>,
) -> Router {
    let shed_load = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(overloaded))
        .load_shed()
        .concurrency_limit(max_in_flight);
    users::describe_metrics();
    let router = service_kit::openapi::serve_document(api(), state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(shed_load);
    match rate_limit {
        Some(limit) => router.layer(axum::middleware::from_fn_with_state(
            limit,
            rate_limit::limit_sign_ups,
        )),
        None => router,
    }
}

/// Registration's OpenAPI document (served at `/openapi.json`, committed as
/// `docs/openapi/registration.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    service_kit::openapi::document(api())
}

/// The documented routes.
fn api() -> OpenApiRouter<AppState> {
    service_kit::openapi::routes(&crate::config::IDENTITY).merge(users::router())
}

/// The answer when every slot is busy. `load_shed` fails the request with `Overloaded`;
/// nothing else in the stack fails with an error (handlers answer with responses).
async fn overloaded(error: BoxError) -> Response {
    tracing::warn!(error = %error, "shedding load");
    let mut response = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "too many requests in flight; retry shortly",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response.into_response()
}
