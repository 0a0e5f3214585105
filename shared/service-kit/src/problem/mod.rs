//! RFC 9457 problem details: the one shape of every error answer, from a handler or from
//! the framework.
//!
//! ```json
//! {"type":"tag:signup-demo,2026:problem:duplicate_email","title":"Conflict","status":409,
//!  "detail":"a user with this email address already exists","code":"duplicate_email",
//!  "errors":[{"pointer":"#/email","detail":"a user with this email address already exists"}]}
//! ```
//!
//! - `type` names the kind of problem. Each of ours is a `tag:` URI (RFC 4151: a stable
//!   identifier that needs no registry and is not meant to be fetched) ending in its
//!   `code`; the list is in `docs/problems.md`. What the framework answers by itself (an
//!   unknown route, a wrong method, a timeout) is `about:blank`, which RFC 9457 defines as
//!   "nothing more than the status".
//! - `title` is the status's reason phrase: the same for every occurrence of a type.
//! - `detail` is this occurrence, in words for people.
//! - `code` (an extension member) is the type's last segment, for clients that branch on a
//!   plain string.
//! - `errors` (an extension member, as in RFC 9457's own example) names the inputs at
//!   fault: a JSON pointer into the body, a query or path parameter, or a header.

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::ToSchema;

/// The media type of a problem document.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// The prefix of every problem type this project defines; the code follows.
const TYPE_PREFIX: &str = "tag:signup-demo,2026:problem:";

/// The largest framework error text [`for_bare_errors`] reads to use as `detail`.
const MAX_TEXT_DETAIL: usize = 4 * 1024;

/// An RFC 9457 problem document: the body of every error answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// The kind of problem: a URI.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The status's reason phrase.
    pub title: &'static str,
    /// The HTTP status, repeated in the body for clients that keep only bodies.
    pub status: u16,
    /// What went wrong this time, in words.
    pub detail: String,
    /// Stable and machine-readable: clients branch on this, not on `detail`.
    pub code: &'static str,
    /// The inputs at fault, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<InputError>,
}

/// One input at fault: where it is (one of `pointer`, `parameter`, `header`), and what is
/// wrong with it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InputError {
    /// A JSON pointer (RFC 6901, as a URI fragment) into the request body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// A query or path parameter, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// A request header, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// What is wrong with it.
    pub detail: String,
}

/// Where an input is, as a handler names it; it becomes one member of [`InputError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A JSON pointer (RFC 6901, as a URI fragment) into the request body.
    Pointer(String),
    /// A query or path parameter, by name.
    Parameter(String),
    /// A request header, by name.
    Header(String),
}

impl Input {
    /// A top-level field of the JSON body.
    pub fn body_field(name: &str) -> Self {
        Self::Pointer(format!("#/{name}"))
    }
}

impl Problem {
    /// A problem of one of our types: `code` names it, `status` and `detail` describe it.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            problem_type: format!("{TYPE_PREFIX}{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            errors: Vec::new(),
        }
    }

    /// A problem that is nothing more than its status (`about:blank`): what the framework
    /// answers by itself. Its code is the reason phrase in snake case.
    pub fn for_status(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            problem_type: "about:blank".to_owned(),
            code: status_code_name(status),
            ..Self::new(status, "", detail)
        }
    }

    /// Names `input` as at fault, with this problem's detail.
    pub fn at(mut self, input: Input) -> Self {
        let mut error = InputError {
            pointer: None,
            parameter: None,
            header: None,
            detail: self.detail.clone(),
        };
        match input {
            Input::Pointer(pointer) => error.pointer = Some(pointer),
            Input::Parameter(name) => error.parameter = Some(name),
            Input::Header(name) => error.header = Some(name),
        }
        self.errors.push(error);
        self
    }

    /// The status as a [`StatusCode`].
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let mut response = (status, axum::Json(self)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

/// The code of an `about:blank` problem: the statuses the framework answers by itself.
fn status_code_name(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_content",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        status if status.is_server_error() => "internal",
        _ => "error",
    }
}

/// Wraps every route, the fallback included, so that what the framework answers by
/// itself is a problem too: an unknown route (404), a wrong method (405), an extractor's
/// plain-text rejection (e.g. a query string that does not parse), a timeout's empty 408,
/// and a panicking handler (caught: a 500 that says nothing about the internals, and the
/// panic in the log).
pub fn for_the_framework(router: Router) -> Router {
    router
        .fallback(|| async { Problem::for_status(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::for_status(
                StatusCode::METHOD_NOT_ALLOWED,
                "this route does not take that method",
            )
        })
        .layer(middleware::from_fn(for_bare_errors))
        .layer(CatchPanicLayer::custom(on_panic))
}

/// Replaces an error answer that is not JSON (an empty body, or an extractor's plain
/// text) with a problem of its status; the text, if any, becomes the detail.
async fn for_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT_DETAIL)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut problem = Problem::for_status(status, detail).into_response();
    // Keep what the framework said besides the body, e.g. `Allow` on a 405.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

/// The answer to a handler that panicked.
fn on_panic(panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(not a string)");
    tracing::error!(panic = message, "a handler panicked");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "something went wrong; try again",
    )
    .into_response()
}

#[cfg(test)]
mod tests;
