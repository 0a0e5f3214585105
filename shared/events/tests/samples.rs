//! Golden samples (`shared/events/samples/`): one JSON file per event type and version, and
//! one per allowed change. Each must validate against the committed schema of its type,
//! and the consumers' decoder must accept it. A change to an event that breaks a sample is
//! a breaking change: it needs a new type version (docs/events.md).

use std::path::{Path, PathBuf};

use events::{Event, UserRegisteredV1, decode};
use serde_json::Value;

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

fn read(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The committed schema of `T`, as a validator.
fn validator<T: Event>() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(T::SCHEMA_PATH);
    jsonschema::validator_for(&read(&path)).expect("the committed schema is a valid schema")
}

/// Every sample: named `<type>.json` or `<type>.<change>.json`, valid against its type's
/// committed schema. Adding a type without samples, or a sample of an unknown type, fails.
#[test]
fn every_sample_validates_against_the_committed_schema_of_its_type() {
    let mut checked = 0;
    for entry in std::fs::read_dir(samples_dir()).expect("the samples folder") {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let sample = read(&path);
        let validator = if name.starts_with(UserRegisteredV1::TYPE) {
            validator::<UserRegisteredV1>()
        } else {
            panic!("{name}: a sample of a type this test does not know; add it here");
        };
        let errors: Vec<String> = validator
            .iter_errors(&sample)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(sample["type"], UserRegisteredV1::TYPE, "{name}");
        checked += 1;
    }
    assert!(checked >= 2, "the samples are there ({checked} found)");
}

/// The v1 sample decodes, with every field where the consumers expect it.
#[test]
fn the_v1_sample_decodes() {
    let body = std::fs::read(samples_dir().join("user.registered.v1.json")).expect("sample");
    let event = decode::<UserRegisteredV1>(Some(UserRegisteredV1::TYPE), &body).expect("decodes");
    assert_eq!(event.data.email, "ada@example.org");
    assert_eq!(event.data.display_name, "Ada");
    assert_eq!(event.sequence, 1);
    assert_eq!(event.subject, event.data.user_id.to_string());
}

/// A v1 event with an added optional field (in `data`) and an added extension attribute
/// (in the envelope) is still v1: a consumer built for v1 accepts it and ignores what it
/// does not know. This is the change that needs no new version.
#[test]
fn a_consumer_built_for_v1_accepts_v1_with_added_optional_fields() {
    let body = std::fs::read(samples_dir().join("user.registered.v1.added-optional-field.json"))
        .expect("sample");
    let event = decode::<UserRegisteredV1>(Some(UserRegisteredV1::TYPE), &body).expect("decodes");
    assert_eq!(event.data.display_name, "Grace");
}

/// A breaking change is a new type (`user.registered.v2`), published beside v1 while
/// consumers move: a consumer built for v1 refuses it as an unknown type, a permanent
/// failure that goes to its dead-letter queue with that reason (never a retry).
#[test]
fn a_consumer_built_for_v1_refuses_v2_as_an_unknown_type() {
    let mut v2 = read(&samples_dir().join("user.registered.v1.json"));
    v2["type"] = "user.registered.v2".into();
    let body = serde_json::to_vec(&v2).expect("serialises");
    let error =
        decode::<UserRegisteredV1>(Some("user.registered.v2"), &body).expect_err("v2 is not v1");
    assert!(error.to_string().contains("unknown event type"), "{error}");
}
