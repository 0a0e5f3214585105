//! One error type for every handler: the status, the JSON body and the logging of a
//! failed request are decided here, once, for all three services.

use std::sync::Arc;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::error_body::ErrorBody;

/// What a handler answers when it cannot answer with what was asked for.
///
/// A client's mistake carries a stable `code` and the field at fault; a server-side
/// failure is logged here with its cause and answered with an opaque message, since the
/// client cannot act on SQL details and they may leak internals.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request cannot be served as it is: a 4xx.
    #[error("{message}")]
    Rejected {
        /// 400, 404, 409, 422, …
        status: StatusCode,
        /// Stable and machine-readable: clients branch on this.
        code: &'static str,
        /// The input at fault, if it is one field or parameter.
        field: Option<&'static str>,
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
    /// A 4xx that is not about one field.
    pub fn rejected(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Rejected {
            status,
            code,
            field: None,
            message: message.into(),
        }
    }

    /// A 4xx about one input field or parameter, which the body names.
    pub fn invalid_field(
        status: StatusCode,
        code: &'static str,
        field: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::Rejected {
            status,
            code,
            field: Some(field),
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
                field,
                message,
            } => {
                let body = match field {
                    Some(field) => ErrorBody::for_field(code, field, message),
                    None => ErrorBody::new(code, message),
                };
                body.with_status(status)
            }
            Self::Database(error) if is_unavailable(error.as_ref()) => {
                tracing::warn!(error = %error, "database unavailable");
                let mut response = ErrorBody::new(
                    "unavailable",
                    "the service is temporarily unavailable; retry shortly",
                )
                .with_status(StatusCode::SERVICE_UNAVAILABLE);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            Self::Database(error) => {
                tracing::error!(error = %error, error.cause_chain = ?error, "request failed");
                ErrorBody::new("internal", "something went wrong; try again")
                    .with_status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}
