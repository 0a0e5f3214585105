//! Property-based fuzzing of the sign-up's input parsing with proptest (so it runs on
//! stable, in `cargo test`): [`NewUser::parse`], [`EmailAddress::parse`] and
//! [`DisplayName::parse`] get whatever a client sends, so they must never panic, every
//! rejection must name the field and say what is wrong (it becomes the 422's text), and
//! every accepted value must keep the rules the types document: what a handler holds is
//! valid, and parsing it again changes nothing (the normalisation is idempotent, so the
//! stored address is its own normal form and the unique constraint works on it).
//!
//! The inputs: any Unicode text (NUL, controls, Unicode spaces, astral characters), very
//! long text, and near-valid addresses and names that land on both sides of each rule.
//! The promise of the OpenAPI document (`docs/openapi/registration.json`) is checked too:
//! anything its patterns and lengths allow is accepted.
//!
//! `cargo test` runs proptest's default of 256 cases per property. A longer run:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p registration --test fuzz --release
//! ```
//!
//! A failure is shrunk to a minimal input, and proptest saves its seed in
//! `tests/fuzz.proptest-regressions`, beside this file; commit it with the fix, so every
//! later run tries that input first.

use std::{ops::RangeInclusive, path::Path};

use proptest::{
    collection::vec,
    option,
    prelude::*,
    sample::{Index, select},
    strategy::ValueTree,
    string::string_regex,
    test_runner::{FileFailurePersistence, TestCaseError, TestRunner},
};
use registration::domain::{DisplayName, EmailAddress, InvalidField, NewUser};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// What the types document

/// The rules of [`EmailAddress`]: trimmed and lower-cased input; one `@`; 1 to 64 bytes
/// before it (RFC 5321 counts octets) with none of `()<>,;:\"[]`; a domain of at least two
/// dot-separated labels of 1 to 63 bytes, letters, digits and inner hyphens; at most 254
/// characters; no spaces or controls anywhere.
fn check_email(input: &str, email: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(email, input.trim().to_lowercase());
    prop_assert_eq!(email.to_lowercase(), email, "not in lower case");
    prop_assert!(email.chars().count() <= 254);
    prop_assert!(!email.chars().any(|c| c.is_whitespace() || c.is_control()));
    let (local, domain) = email.split_once('@').expect("an accepted address has an @");
    prop_assert!(!domain.contains('@'), "more than one @");
    prop_assert!((1..=64).contains(&local.len()), "local part {local:?}");
    prop_assert!(!local.contains(['(', ')', '<', '>', ',', ';', ':', '\\', '"', '[', ']']));
    let labels: Vec<&str> = domain.split('.').collect();
    prop_assert!(labels.len() >= 2, "domain {domain:?}");
    for label in labels {
        prop_assert!((1..=63).contains(&label.len()), "label {label:?}");
        prop_assert!(
            !label.starts_with('-') && !label.ends_with('-'),
            "label {label:?}"
        );
        prop_assert!(label.chars().all(|c| c.is_alphanumeric() || c == '-'));
    }
    Ok(())
}

/// The rules of [`DisplayName`]: the trimmed input, 1 to 100 characters, no control
/// characters.
fn check_name(input: &str, name: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(name, input.trim());
    prop_assert!((1..=100).contains(&name.chars().count()));
    prop_assert!(!name.chars().any(char::is_control));
    prop_assert_eq!(name.trim(), name);
    Ok(())
}

/// Parses an address and checks the outcome: a valid, idempotent address, or a reason.
fn check_email_parse(input: &str) -> Result<Option<EmailAddress>, TestCaseError> {
    match EmailAddress::parse(input) {
        Ok(email) => {
            check_email(input, email.as_ref())?;
            prop_assert_eq!(EmailAddress::parse(email.as_ref()), Ok(email.clone()));
            let padded = format!(" \t{}\u{3000}", email.as_ref());
            prop_assert_eq!(EmailAddress::parse(&padded), Ok(email.clone()));
            Ok(Some(email))
        }
        Err(message) => {
            prop_assert!(!message.trim().is_empty());
            Ok(None)
        }
    }
}

/// Parses a name and checks the outcome: a valid, idempotent name, or the reason for the
/// rule it breaks. The rules are the whole story: a name is accepted exactly when it keeps
/// them.
fn check_name_parse(input: &str) -> Result<Option<DisplayName>, TestCaseError> {
    let trimmed = input.trim();
    let broken = if trimmed.is_empty() {
        Some("empty")
    } else if trimmed.chars().count() > 100 {
        Some("100 characters")
    } else if trimmed.chars().any(char::is_control) {
        Some("control characters")
    } else {
        None
    };
    match (DisplayName::parse(input), broken) {
        (Ok(name), None) => {
            check_name(input, name.as_ref())?;
            prop_assert_eq!(DisplayName::parse(name.as_ref()), Ok(name.clone()));
            Ok(Some(name))
        }
        (Err(message), Some(rule)) => {
            prop_assert!(message.contains(rule), "{message:?} does not say {rule:?}");
            Ok(None)
        }
        (answer, broken) => Err(TestCaseError::fail(format!(
            "{input:?}: {answer:?}, but the rule it breaks is {broken:?}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Generators

/// Any text: every Unicode scalar value is possible, with a bias to the troublesome ones
/// (NUL, controls, quotes, backslash, BOM, RTL override, astral characters).
fn any_text(max_chars: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..=max_chars).prop_map(String::from_iter)
}

/// Very long text: a short piece repeated, up to 20 000 characters.
fn long_text() -> impl Strategy<Value = String> {
    (any_text(4), 1..5_000usize).prop_map(|(piece, times)| piece.repeat(times))
}

/// Characters whose case mapping is unusual: lower-casing changes their length in bytes
/// or in characters, or gives a combining mark, or an ASCII letter.
const TRICKY_LETTERS: [char; 12] = [
    'É', 'é', 'İ', 'ß', 'ẞ', 'Σ', 'ς', '\u{212A}', 'Ⱥ', 'ǅ', 'ﬃ', 'Ω',
];

/// Unicode white space that `trim` removes, beyond the ASCII space; U+0085 is a control
/// character too.
const SPACES: [char; 8] = [
    ' ', '\t', '\n', '\u{85}', '\u{a0}', '\u{2003}', '\u{3000}', '\u{2028}',
];

/// A character of the given ASCII set most of the time, otherwise a letter with an
/// unusual case mapping or any character at all.
fn char_from(ascii: &'static str) -> impl Strategy<Value = char> {
    prop_oneof![
        60 => select(ascii.chars().collect::<Vec<_>>()),
        2 => select(TRICKY_LETTERS.to_vec()),
        1 => any::<char>(),
    ]
}

/// Text from `char_from(ascii)`: mostly of a `usual` length, sometimes around a limit.
fn chars(
    ascii: &'static str,
    usual: RangeInclusive<usize>,
    near_limit: RangeInclusive<usize>,
) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => vec(char_from(ascii), usual),
        1 => vec(char_from(ascii), near_limit),
    ]
    .prop_map(String::from_iter)
}

fn padding() -> impl Strategy<Value = String> {
    vec(select(SPACES.to_vec()), 0..3).prop_map(String::from_iter)
}

/// Control characters, C0 and C1, that `trim` leaves alone.
const CONTROLS: [char; 5] = ['\0', '\u{7}', '\u{1b}', '\u{7f}', '\u{9b}'];

const ATEXT: &str =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.!#$%&'*+/=?^_`{|}~-";
const LABEL: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-";

/// Something close to an address, often valid: padding, a local part, an `@`, labels
/// joined by dots, padding; each part sometimes too long, empty or with a stray character.
fn address_like() -> impl Strategy<Value = String> {
    (
        padding(),
        chars(ATEXT, 1..=20, 0..=70),
        prop_oneof![
            6 => vec(chars(LABEL, 1..=12, 0..=66), 2..=4),
            1 => vec(chars(LABEL, 1..=12, 0..=66), 1..=6),
        ],
        padding(),
    )
        .prop_map(|(before, local, labels, after)| {
            format!("{before}{local}@{}{after}", labels.join("."))
        })
}

/// Something close to a name: padding, words of letters and spaces, sometimes around
/// 100 characters long, sometimes blank, sometimes with a control character inside,
/// padding.
fn name_like() -> impl Strategy<Value = String> {
    (
        padding(),
        prop_oneof![
            9 => chars("Ada Lovelace Zoë-O'Brien ", 1..=30, 90..=110),
            1 => Just(String::new()),
        ],
        option::weighted(0.15, (any::<Index>(), select(CONTROLS.to_vec()))),
        padding(),
    )
        .prop_map(|(before, name, control, after)| {
            let mut name: Vec<char> = name.chars().collect();
            if let Some((at, control)) = control {
                name.insert(at.index(name.len() + 1), control);
            }
            format!("{before}{}{after}", String::from_iter(name))
        })
}

fn any_input(like: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop_oneof![4 => like, 2 => any_text(300), 1 => long_text()]
}

/// The pattern and length limit the OpenAPI document states for a sign-up field, as a
/// generator of the strings it allows.
fn documented(field: &str) -> impl Strategy<Value = String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi/registration.json");
    let text = std::fs::read_to_string(&path).expect("the committed OpenAPI document");
    let document: Value = serde_json::from_str(&text).expect("the document is JSON");
    let schema = &document["components"]["schemas"]["RegisterUserRequest"]["properties"][field];
    let pattern = schema["pattern"].as_str().expect("a pattern");
    let max_length = schema["maxLength"].as_u64().expect("a maxLength");
    let max_length = usize::try_from(max_length).expect("a small number");
    // proptest generates from a regular expression, not from anchors, and reads `\s` as
    // Rust does (Unicode White_Space; ECMAScript's also has U+FEFF). The open-ended
    // repetitions are bounded, to a subset of what the pattern allows (addresses of two
    // or three labels, names of at most 99 characters), so that what is generated nearly
    // always fits maxLength: proptest gives up on a run once its filters have rejected
    // 65 536 values in all, and a long run generates millions.
    let unanchored = pattern
        .strip_prefix('^')
        .and_then(|p| p.strip_suffix('$'))
        .expect("an anchored pattern");
    let bounded = unanchored.replace(")+", "){1,2}").replace("]*", "]{0,49}");
    string_regex(&bounded)
        .expect("a pattern proptest can generate from")
        .prop_filter("longer than maxLength", move |s| {
            s.chars().count() <= max_length
        })
}

// ---------------------------------------------------------------------------------------
// The properties

proptest! {
    // proptest's default keeps failures in `proptest-regressions/` beside a `src/lib.rs`;
    // a test target has none, so say where instead of having it warn on every failure.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    /// Any address: no panic; a valid, lower-case, idempotent address, or a reason.
    #[test]
    fn an_email_is_parsed_to_a_valid_address_or_rejected_with_a_reason(
        input in any_input(address_like()),
    ) {
        check_email_parse(&input)?;
    }

    /// Any name: no panic; accepted exactly when it keeps the rules, trimmed and
    /// idempotent; otherwise the reason is the rule it breaks.
    #[test]
    fn a_display_name_is_parsed_to_a_valid_name_or_rejected_with_a_reason(
        input in any_input(name_like()),
    ) {
        check_name_parse(&input)?;
    }

    /// Any sign-up, fields present or not: accepted exactly when both fields are there
    /// and valid; otherwise the error names a field that is missing or invalid, with the
    /// reason its own rule gives.
    #[test]
    fn a_sign_up_is_parsed_or_the_error_names_a_bad_field(
        email in option::of(any_input(address_like())),
        display_name in option::of(any_input(name_like())),
    ) {
        let parsed = NewUser::parse(email.as_deref(), display_name.as_deref());
        let email_alone = email.as_deref().map(EmailAddress::parse);
        let name_alone = display_name.as_deref().map(DisplayName::parse);
        match parsed {
            Ok(user) => {
                prop_assert_eq!(Some(Ok(user.email)), email_alone);
                prop_assert_eq!(Some(Ok(user.display_name)), name_alone);
            }
            Err(InvalidField { field, message }) => {
                let error = InvalidField { field, message: message.clone() };
                prop_assert_eq!(error.to_string(), format!("{field} {message}"));
                prop_assert!(!message.trim().is_empty());
                let own_answer = match field {
                    "email" => email_alone.map(|answer| answer.err()),
                    "display_name" => name_alone.map(|answer| answer.err()),
                    other => return Err(TestCaseError::fail(format!("unknown field {other:?}"))),
                };
                match own_answer {
                    None => prop_assert_eq!(message, "is required"),
                    Some(own) => prop_assert_eq!(Some(message), own, "{} is valid", field),
                }
            }
        }
    }

    /// Anything the OpenAPI document's email pattern and maxLength allow is accepted:
    /// the document says its pattern is "what is accepted for certain".
    #[test]
    fn every_address_the_document_allows_is_accepted(input in documented("email")) {
        let email = check_email_parse(&input)?;
        prop_assert!(email.is_some(), "{input:?} rejected: {:?}", EmailAddress::parse(&input));
    }

    /// Anything the OpenAPI document's display-name pattern and length limits allow is
    /// accepted.
    #[test]
    fn every_name_the_document_allows_is_accepted(input in documented("display_name")) {
        let name = check_name_parse(&input)?;
        prop_assert!(name.is_some(), "{input:?} rejected: {:?}", DisplayName::parse(&input));
    }
}

/// The near-valid generators reach both answers, so the properties above check accepted
/// values and not only rejections.
#[test]
fn the_generators_produce_both_valid_and_invalid_input() {
    let mut runner = TestRunner::deterministic();
    let mut sample = |strategy: &dyn Fn(&mut TestRunner) -> String| {
        (0..1_000)
            .map(|_| strategy(&mut runner))
            .collect::<Vec<_>>()
    };
    let addresses = sample(&|runner| address_like().new_tree(runner).expect("a value").current());
    let names = sample(&|runner| name_like().new_tree(runner).expect("a value").current());
    let valid_addresses = addresses
        .iter()
        .filter(|a| EmailAddress::parse(a).is_ok())
        .count();
    let valid_names = names
        .iter()
        .filter(|n| DisplayName::parse(n).is_ok())
        .count();
    for (what, valid) in [("addresses", valid_addresses), ("names", valid_names)] {
        assert!(
            (100..=900).contains(&valid),
            "{valid} of 1000 generated {what} are valid"
        );
    }
}
