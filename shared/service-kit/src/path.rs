use axum::{
    extract::{FromRequestParts, rejection::PathRejection},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;

use crate::problem::{Input, Problem};

/// Path parameters. Same as `axum::extract::Path`, except that a parameter that does not
/// parse is answered with a problem naming it (`{"parameter":"user_id"}` in `errors`)
/// instead of axum's plain text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(reject(rejection)),
        }
    }
}

fn reject(rejection: PathRejection) -> Response {
    use axum::extract::path::ErrorKind;
    let PathRejection::FailedToDeserializePathParams(failure) = &rejection else {
        return Problem::for_status(rejection.status(), rejection.body_text()).into_response();
    };
    let parameter = match failure.kind() {
        ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::DeserializeError { key, .. } => key,
        _ => return Problem::for_status(rejection.status(), rejection.body_text()).into_response(),
    };
    // axum's text says what did not parse and why, e.g. "Cannot parse `user_id` with
    // value `x`: UUID parsing failed: …".
    let detail = failure.body_text();
    let detail = detail.strip_prefix("Invalid URL: ").unwrap_or(&detail);
    Problem::new(StatusCode::BAD_REQUEST, "invalid_parameter", detail)
        .at(Input::Parameter(parameter.clone()))
        .into_response()
}
