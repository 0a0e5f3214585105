use super::{DisplayName, EmailAddress};

/// A sign-up request that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The normalised address.
    pub email: EmailAddress,
    /// The trimmed name.
    pub display_name: DisplayName,
}

/// An input field that failed its rule; becomes a 422 naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct InvalidField {
    /// The JSON field name.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl NewUser {
    /// Parses the raw fields; `None` means the field was absent from the body.
    pub fn parse(email: Option<&str>, display_name: Option<&str>) -> Result<Self, InvalidField> {
        let email = required("email", email)?;
        let display_name = required("display_name", display_name)?;
        Ok(Self {
            email: EmailAddress::parse(email).map_err(|message| InvalidField {
                field: "email",
                message,
            })?,
            display_name: DisplayName::parse(display_name).map_err(|message| InvalidField {
                field: "display_name",
                message,
            })?,
        })
    }
}

fn required<'a>(field: &'static str, value: Option<&'a str>) -> Result<&'a str, InvalidField> {
    value.ok_or_else(|| InvalidField {
        field,
        message: "is required".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_invalid_field_is_named() {
        let err = NewUser::parse(None, Some("Ada")).unwrap_err();
        assert_eq!(err.field, "email");
        let err = NewUser::parse(Some("ada@example.org"), Some(" ")).unwrap_err();
        assert_eq!(err.field, "display_name");
        let err = NewUser::parse(Some("nope"), Some("Ada")).unwrap_err();
        assert_eq!(err.field, "email");
    }
}
