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
        // Printable ASCII, spaces allowed inside (the documented pattern). `to_str` alone
        // would also let a tab through.
        let key = value
            .to_str()
            .ok()
            .filter(|key| key.bytes().all(|byte| (b' '..=b'~').contains(&byte)))
            .ok_or(ApiError::InvalidIdempotencyKey("must be visible ASCII"))?;
        if key.is_empty() || key.len() > 255 {
            return Err(ApiError::InvalidIdempotencyKey(
                "must be 1 to 255 characters",
            ));
        }
        if key.starts_with(' ') || key.ends_with(' ') {
            return Err(ApiError::InvalidIdempotencyKey(
                "must not start or end with a space",
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

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn key(value: &str) -> Result<Option<IdempotencyKey>, ApiError> {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(value).expect("a header value");
        headers.insert(IDEMPOTENCY_KEY, value);
        IdempotencyKey::from_headers(&headers)
    }

    #[test]
    fn printable_ascii_with_inner_spaces_is_a_key() {
        assert!(matches!(key("order 42 / retry"), Ok(Some(_))));
        assert!(matches!(key(&"k".repeat(255)), Ok(Some(_))));
    }

    /// What the documented pattern refuses, the service refuses too (schemathesis found a
    /// tab accepted).
    #[test]
    fn a_tab_a_non_ascii_byte_or_a_too_long_key_is_refused() {
        for bad in ["a\tb", "caf\u{e9}", &"k".repeat(256)] {
            assert!(
                matches!(key(bad), Err(ApiError::InvalidIdempotencyKey(_))),
                "{bad:?}"
            );
        }
    }
}
