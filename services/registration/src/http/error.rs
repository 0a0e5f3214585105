use std::sync::Arc;

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use service_kit::{http_error::HttpError, problem::Input};

use super::idempotency::IDEMPOTENCY_KEY;
use crate::{domain::InvalidField, outbox::EntryError, store::StoreError};

/// Every way a registration request can fail, mapped to an answer in one place.
///
/// The rendering (the problem document, the opaque 500, the 503 with `Retry-After` for an
/// unreachable database, which tells a client to retry with its Idempotency-Key) is the
/// shared [`HttpError`]'s; this type says which domain failure is which answer.
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
    /// The database failed: 503 or 500, details in the log only.
    #[error("database failure")]
    Database(#[source] Arc<sqlx::Error>),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DuplicateEmail => Self::DuplicateEmail,
            StoreError::Database(error) => Self::Database(error),
        }
    }
}

impl From<EntryError> for ApiError {
    fn from(error: EntryError) -> Self {
        Self::Database(Arc::new(sqlx::Error::Encode(Box::new(error))))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(Arc::new(error))
    }
}

impl From<ApiError> for HttpError {
    fn from(error: ApiError) -> Self {
        let message = error.to_string();
        match error {
            ApiError::Invalid(invalid) => HttpError::invalid_input(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                Input::body_field(invalid.field),
                message,
            ),
            ApiError::DuplicateEmail => HttpError::invalid_input(
                StatusCode::CONFLICT,
                "duplicate_email",
                Input::body_field("email"),
                message,
            ),
            ApiError::InvalidIdempotencyKey(_) => HttpError::invalid_input(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                Input::Header(IDEMPOTENCY_KEY.to_owned()),
                message,
            ),
            ApiError::IdempotencyKeyReused => HttpError::rejected(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                message,
            ),
            ApiError::NotFound => HttpError::not_found(message),
            ApiError::Database(error) => HttpError::Database(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        HttpError::from(self).into_response()
    }
}
