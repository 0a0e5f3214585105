use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use service_kit::error_body::ErrorBody;

use crate::{domain::InvalidField, store::StoreError};

/// Every way a registration request can fail, mapped to a status in one place.
///
/// Server-side failures are logged here with their cause and answered with an opaque
/// message: the client cannot act on SQL details, and they may leak internals.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An input field broke its rule: 422 naming the field.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// The email belongs to an existing user: 409.
    #[error("a user with this email address already exists")]
    DuplicateEmail,
    /// The `Idempotency-Key` header is not a usable key: 400.
    #[error("invalid Idempotency-Key header: {0}")]
    InvalidIdempotencyKey(&'static str),
    /// The key was first used with a different request body: 422.
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// No such user: 404.
    #[error("user not found")]
    NotFound,
    /// The database failed: 500, details in the log only.
    #[error("database failure")]
    Database(#[source] sqlx::Error),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DuplicateEmail => Self::DuplicateEmail,
            StoreError::Database(error) => Self::Database(error),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

/// Failures that mean "the database cannot be reached right now" rather than "this request
/// is broken": the client should retry (with its Idempotency-Key), so they are a 503.
fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, body) = match &self {
            Self::Invalid(invalid) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorBody::for_field("invalid_field", invalid.field, message),
            ),
            Self::DuplicateEmail => (
                StatusCode::CONFLICT,
                ErrorBody::for_field("duplicate_email", "email", message),
            ),
            Self::InvalidIdempotencyKey(_) => (
                StatusCode::BAD_REQUEST,
                ErrorBody::new("invalid_idempotency_key", message),
            ),
            Self::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorBody::new("idempotency_key_reused", message),
            ),
            Self::NotFound => (StatusCode::NOT_FOUND, ErrorBody::new("not_found", message)),
            Self::Database(error) if is_unavailable(error) => {
                tracing::warn!(error = %error, "database unavailable");
                let mut response = ErrorBody::new(
                    "unavailable",
                    "the service is temporarily unavailable; retry shortly",
                )
                .with_status(StatusCode::SERVICE_UNAVAILABLE);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            Self::Database(error) => {
                tracing::error!(error = %error, error.cause_chain = ?error, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorBody::new("internal", "something went wrong; try again"),
                )
            }
        };
        body.with_status(status)
    }
}
