//! One error type for every handler: the status, the JSON body and the logging of a
//! failed request are decided here, once, for all three services.

use std::sync::Arc;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::problem::{Input, Problem};

/// What a handler answers when it cannot answer with what was asked for.
///
/// A client's mistake carries a stable `code` and the input at fault; a server-side
/// failure is logged here with its cause and answered with an opaque detail, since the
/// client cannot act on SQL details and they may leak internals. Either way the answer is
/// a [`Problem`].
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request cannot be served as it is: a 4xx.
    #[error("{message}")]
    Rejected {
        /// 400, 404, 409, 422, …
        status: StatusCode,
        /// Stable and machine-readable: clients branch on this.
        code: &'static str,
        /// The input at fault, if it is one field, parameter or header.
        input: Option<Input>,
        /// What is wrong, in words.
        message: String,
    },
    /// The database failed: 503 with `Retry-After` when it is unreachable or saturated
    /// (retrying will help), 500 otherwise. Details go to the log only. Shared, because
    /// one failed statement can be the answer to many requests (a group commit).
    #[error("database failure")]
    Database(#[source] Arc<sqlx::Error>),
}

impl From<sqlx::Error> for HttpError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(Arc::new(error))
    }
}

impl HttpError {
    /// A 4xx that is not about one input.
    pub fn rejected(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Rejected {
            status,
            code,
            input: None,
            message: message.into(),
        }
    }

    /// A 4xx about one input (a body field, a parameter, a header), which the problem's
    /// `errors` member names.
    pub fn invalid_input(
        status: StatusCode,
        code: &'static str,
        input: Input,
        message: impl Into<String>,
    ) -> Self {
        Self::Rejected {
            status,
            code,
            input: Some(input),
            message: message.into(),
        }
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::rejected(StatusCode::NOT_FOUND, "not_found", message)
    }
}

/// Failures that mean "the database cannot be reached right now" rather than "this request
/// is broken": the client should retry, so they are a 503.
fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
    )
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        match self {
            Self::Rejected {
                status,
                code,
                input,
                message,
            } => {
                let problem = Problem::new(status, code, message);
                match input {
                    Some(input) => problem.at(input),
                    None => problem,
                }
                .into_response()
            }
            Self::Database(error) if is_unavailable(error.as_ref()) => {
                tracing::warn!(error = %error, "database unavailable");
                let mut response = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the service is temporarily unavailable; retry shortly",
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            Self::Database(error) => {
                tracing::error!(error = %error, error.cause_chain = ?error, "request failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong; try again",
                )
                .into_response()
            }
        }
    }
}
