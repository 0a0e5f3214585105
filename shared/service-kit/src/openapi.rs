//! Each service's OpenAPI 3.1 document, generated from its handlers' own annotations and
//! types (utoipa), served at `GET /openapi.json` and committed under `docs/openapi/` (a
//! test in each service fails when the two differ).

use std::sync::Arc;

use axum::{Json, Router, routing::get};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

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
