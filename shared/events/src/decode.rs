use crate::{Envelope, Event};

/// Why a message body cannot become an event. Every variant is permanent: retrying the same
/// bytes gives the same answer, so a consumer sends such a message to its dead-letter queue
/// at once instead of retrying it.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The message says it is of a type this consumer does not handle (for example a new
    /// major version it was not built for).
    #[error("unknown event type {found:?}, expected {expected:?}")]
    UnknownType {
        /// The type the message carries.
        found: String,
        /// The type the consumer handles.
        expected: &'static str,
    },
    /// The body is not a valid envelope of the expected type.
    #[error("unparseable {event_type} body: {source}")]
    Unparseable {
        /// The type we tried to decode.
        event_type: &'static str,
        /// What serde reported, with line and column.
        #[source]
        source: serde_json::Error,
    },
}

/// Decodes a message body into an `Envelope<T>`, checking the type name first.
///
/// `type_hint` is the type carried outside the body (the AMQP `type` property); when it is
/// missing the envelope's own `type` attribute is checked instead. Unknown fields are
/// ignored, so an older consumer accepts a newer minor version of the same event.
pub fn decode<T: Event>(type_hint: Option<&str>, body: &[u8]) -> Result<Envelope<T>, DecodeError> {
    if let Some(found) = type_hint.filter(|found| *found != T::TYPE) {
        return Err(unknown::<T>(found));
    }
    let envelope: Envelope<T> =
        serde_json::from_slice(body).map_err(|source| DecodeError::Unparseable {
            event_type: T::TYPE,
            source,
        })?;
    if envelope.event_type != T::TYPE {
        return Err(unknown::<T>(&envelope.event_type));
    }
    Ok(envelope)
}

fn unknown<T: Event>(found: &str) -> DecodeError {
    DecodeError::UnknownType {
        found: found.to_owned(),
        expected: T::TYPE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserRegisteredV1;
    use chrono::Utc;
    use uuid::Uuid;

    fn sample() -> Envelope<UserRegisteredV1> {
        let user_id = Uuid::now_v7();
        Envelope::new(
            "/registration",
            user_id.to_string(),
            1,
            UserRegisteredV1 {
                user_id,
                email: "ada@example.org".to_owned(),
                display_name: "Ada".to_owned(),
                registered_at: Utc::now(),
            },
        )
    }

    #[test]
    fn a_round_trip_gives_back_the_same_envelope() {
        let envelope = sample();
        let body = serde_json::to_vec(&envelope).expect("serialises");
        let decoded =
            decode::<UserRegisteredV1>(Some("user.registered.v1"), &body).expect("decodes");
        assert_eq!(decoded, envelope);
    }

    #[test]
    fn unknown_fields_from_a_newer_minor_version_are_ignored() {
        let mut json = serde_json::to_value(sample()).expect("serialises");
        json["data"]["locale"] = "fr-FR".into();
        json["partitionkey"] = "x".into();
        let body = serde_json::to_vec(&json).expect("serialises");
        assert!(decode::<UserRegisteredV1>(None, &body).is_ok());
    }

    #[test]
    fn another_type_in_the_properties_is_rejected_before_parsing() {
        let err = decode::<UserRegisteredV1>(Some("user.registered.v2"), b"{}").unwrap_err();
        assert!(matches!(err, DecodeError::UnknownType { .. }), "{err}");
    }

    #[test]
    fn another_type_inside_the_body_is_rejected() {
        let mut json = serde_json::to_value(sample()).expect("serialises");
        json["type"] = "user.deleted.v1".into();
        let body = serde_json::to_vec(&json).expect("serialises");
        let err = decode::<UserRegisteredV1>(None, &body).unwrap_err();
        assert!(matches!(err, DecodeError::UnknownType { .. }), "{err}");
    }

    #[test]
    fn garbage_is_unparseable_and_says_where() {
        let err = decode::<UserRegisteredV1>(None, b"not json").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn a_missing_field_is_named_in_the_error() {
        let mut json = serde_json::to_value(sample()).expect("serialises");
        json["data"]
            .as_object_mut()
            .expect("object")
            .remove("email");
        let body = serde_json::to_vec(&json).expect("serialises");
        let err = decode::<UserRegisteredV1>(None, &body).unwrap_err();
        assert!(err.to_string().contains("email"), "{err}");
    }
}
