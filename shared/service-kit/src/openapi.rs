//! Each service's OpenAPI 3.1 document, generated from its handlers' own annotations and
//! types (utoipa), served at `GET /openapi.json` and committed under `docs/openapi/` (a
//! test in each service fails when the two differ).

use std::sync::Arc;

use axum::{Json, Router, routing::get};
use utoipa::{
    OpenApi as _,
    openapi::{InfoBuilder, LicenseBuilder, OpenApi},
};
use utoipa_axum::router::OpenApiRouter;

use crate::{
    config::ServiceIdentity,
    problem::{InputError, Problem},
};

/// A service's documented routes, starting from what its document says of itself (its
/// name and what it does, from its [`ServiceIdentity`], so `--help` and the document say
/// the same) and from what every service's document shares: the problem schemas and the
/// 500 and 503 answers. Add the handlers with `.routes(routes!(…))`; each handler's doc
/// comment (or its `summary` and `description`) is its operation's summary (first line)
/// and description (the rest).
pub fn routes<S>(service: &ServiceIdentity) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut document = SharedParts::openapi();
    document.info = InfoBuilder::new()
        .title(service.name)
        .description(Some(service.about))
        // The services are versioned and licensed with the workspace, as service-kit is.
        .version(env!("CARGO_PKG_VERSION"))
        .license(Some(
            LicenseBuilder::new()
                .name(env!("CARGO_PKG_LICENSE"))
                .identifier(Some(env!("CARGO_PKG_LICENSE")))
                .build(),
        ))
        .build();
    OpenApiRouter::with_openapi(document)
}

/// The components every service's document refers to.
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(Problem, InputError), responses(InternalError, Unavailable)))]
struct SharedParts;

/// The API routes, plus `GET /openapi.json` serving the document they describe.
pub fn serve_document<S>(routes: OpenApiRouter<S>, state: S) -> Router
where
    S: Clone + Send + Sync + 'static,
{
    let (router, document) = routes.split_for_parts();
    let document = Arc::new(document);
    router
        .with_state(state)
        .route("/openapi.json", get(move || async move { Json(document) }))
}

/// The document of `routes`, for the drift test and tools.
pub fn document<S>(routes: OpenApiRouter<S>) -> OpenApi
where
    S: Clone + Send + Sync + 'static,
{
    routes.split_for_parts().1
}

/// The documented 500 of every operation: an unexpected failure, whose cause is only in
/// the log. Use as `(status = 500, response = service_kit::openapi::InternalError)`.
#[derive(Debug, utoipa::ToResponse)]
#[response(
    description = "an unexpected failure; the cause is in the log",
    content_type = "application/problem+json"
)]
pub struct InternalError(pub crate::problem::Problem);

/// The documented 503 of every operation that reads or writes the database: it cannot be
/// reached right now. Use as `(status = 503, response = service_kit::openapi::Unavailable)`.
#[derive(Debug, utoipa::ToResponse)]
#[response(
    description = "the database cannot be reached (or every request slot is busy); retry after `Retry-After`",
    content_type = "application/problem+json",
    headers(("Retry-After" = String, description = "seconds"))
)]
pub struct Unavailable(pub crate::problem::Problem);
