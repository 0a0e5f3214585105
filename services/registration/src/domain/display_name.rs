/// The name shown for a user: trimmed, 1 to 100 characters (Unicode scalar values, so
/// "Zoë" is 3), no control characters (they break logs and mail headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

/// Longest accepted name, in characters.
const MAX_CHARS: usize = 100;

impl DisplayName {
    /// Parses user input; the error says what is wrong, for the 422 answer.
    pub fn parse(input: &str) -> Result<Self, String> {
        let name = input.trim();
        if name.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if name.chars().count() > MAX_CHARS {
            return Err(format!("must be at most {MAX_CHARS} characters"));
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".to_owned());
        }
        Ok(Self(name.to_owned()))
    }
}

impl AsRef<str> for DisplayName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::DisplayName;

    #[test]
    fn names_are_trimmed() {
        assert_eq!(
            DisplayName::parse("  Ada  ").expect("valid").as_ref(),
            "Ada"
        );
    }

    #[test]
    fn one_hundred_characters_fit_and_one_more_does_not() {
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(101)).is_err());
    }

    #[test]
    fn empty_blank_and_control_characters_are_rejected() {
        for input in ["", "   ", "Ada\nLovelace", "Ada\u{0}"] {
            assert!(
                DisplayName::parse(input).is_err(),
                "{input:?} must be rejected"
            );
        }
    }
}
