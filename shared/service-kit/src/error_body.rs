use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// The one shape of every error answer: a stable machine-readable `error` code, a
/// `message` for people, and the offending `field` when the problem is one input field.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// Machine-readable, stable: clients branch on this, not on `message`.
    pub error: &'static str,
    /// What went wrong, in words.
    pub message: String,
    /// The input field at fault, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    /// An error not tied to one field.
    pub fn new(error: &'static str, message: impl Into<String>) -> Self {
        Self {
            error,
            message: message.into(),
            field: None,
        }
    }

    /// An error about one input field.
    pub fn for_field(error: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(error, message)
        }
    }

    /// The response with this body and `status`.
    pub fn with_status(self, status: StatusCode) -> Response {
        (status, Json(self)).into_response()
    }
}
