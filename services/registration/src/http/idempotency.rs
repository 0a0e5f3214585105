//! `Idempotency-Key`: a client that retries a POST after a timeout sends the same key and
//! gets the first answer back, instead of a 409 for its own earlier request.

use axum::http::HeaderMap;

use super::ApiError;

/// The header clients put the key in (the IETF httpapi draft's name).
pub(super) const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// A key from the header: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key in the request, if any; an unusable key is an error, not silently ignored,
    /// because ignoring it would make the retry the client relies on create a duplicate.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
            return Ok(None);
        };
        let key = value
            .to_str()
            .map_err(|_| ApiError::InvalidIdempotencyKey("must be visible ASCII"))?;
        if key.is_empty() || key.len() > 255 {
            return Err(ApiError::InvalidIdempotencyKey(
                "must be 1 to 255 characters",
            ));
        }
        Ok(Some(Self(key.to_owned())))
    }
}

impl AsRef<str> for IdempotencyKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
