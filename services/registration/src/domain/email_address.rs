/// A syntactically valid email address, trimmed and lower-cased.
///
/// Lower-casing the whole address is a deliberate simplification: mailbox names are
/// case-sensitive in theory but not in any provider people use, and treating
/// `Ada@Example.org` and `ada@example.org` as two users would be worse. The rules are
/// the practical subset of RFC 5321: one `@`, a local part of at most 64 characters, a
/// domain of dot-separated labels, at most 254 characters in all, no spaces or controls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses user input; the error says what is wrong, for the 422 answer.
    pub fn parse(input: &str) -> Result<Self, String> {
        let address = input.trim().to_lowercase();
        if address.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if address.chars().count() > 254 {
            return Err("must be at most 254 characters".to_owned());
        }
        let Some((local, domain)) = address.split_once('@') else {
            return Err("must contain an @".to_owned());
        };
        if local.is_empty() || local.len() > 64 {
            return Err("must have 1 to 64 characters before the @".to_owned());
        }
        if address.chars().any(|c| c.is_whitespace() || c.is_control())
            || local.contains(['(', ')', '<', '>', ',', ';', ':', '\\', '"', '[', ']'])
        {
            return Err("must not contain spaces or special characters".to_owned());
        }
        if !is_valid_domain(domain) {
            return Err("must have a domain like example.org after the @".to_owned());
        }
        Ok(Self(address))
    }
}

fn is_valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::EmailAddress;

    #[test]
    fn valid_addresses_are_trimmed_and_lower_cased() {
        let email = EmailAddress::parse("  Ada.Lovelace+signup@Example.ORG ").expect("valid");
        assert_eq!(email.as_ref(), "ada.lovelace+signup@example.org");
    }

    #[test]
    fn international_domains_are_accepted() {
        assert!(EmailAddress::parse("zoë@exämple.de").is_ok());
    }

    #[test]
    fn invalid_addresses_are_rejected_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("   ", "blank"),
            ("ada.example.org", "no @"),
            ("@example.org", "no local part"),
            ("ada@", "no domain"),
            ("ada@example", "domain without a dot"),
            ("ada@example..org", "empty label"),
            ("ada@-example.org", "label starting with a hyphen"),
            ("a da@example.org", "space"),
            ("ada@exa_mple.org", "underscore in the domain"),
            ("<ada>@example.org", "angle brackets"),
        ];
        for (input, why) in cases {
            assert!(
                EmailAddress::parse(input).is_err(),
                "{input:?} ({why}) must be rejected"
            );
        }
    }

    #[test]
    fn length_limits_hold() {
        let long_local = format!("{}@example.org", "a".repeat(65));
        assert!(EmailAddress::parse(&long_local).is_err());
        let long_total = format!("a@{}.org", "b".repeat(250));
        assert!(EmailAddress::parse(&long_total).is_err());
    }
}
