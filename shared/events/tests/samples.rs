//! Golden samples (`shared/events/samples/`): one JSON file per event type and version, and
//! one per allowed change. Each must validate against the committed schema of its type,
//! and the consumers' decoder must accept it. A change to an event that breaks a sample is
//! a breaking change: it needs a new type version (docs/events.md).

use std::path::{Path, PathBuf};

use events::{Event, UserDeletedV1, UserRegisteredV1, decode};
use serde_json::Value;

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

fn read(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The committed schema at `path` (relative to the repository root), as a validator.
fn validator(path: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    jsonschema::validator_for(&read(&path)).expect("the committed schema is a valid schema")
}

/// The errors of `instance` against the committed schema at `path`.
fn violations(path: &str, instance: &Value) -> Vec<String> {
    validator(path)
        .iter_errors(instance)
        .map(|e| e.to_string())
        .collect()
}

/// A sample of `T`: the whole message validates against the envelope schema, its `data`
/// against the data schema its `dataschema` names.
fn check_sample<T: Event>(name: &str, sample: &Value) {
    assert_eq!(sample["type"], T::TYPE, "{name}");
    assert_eq!(sample["dataschema"], T::DATASCHEMA, "{name}");
    let errors = violations(T::SCHEMA_PATH, sample);
    assert!(errors.is_empty(), "{name}: {errors:?}");
    let errors = violations(T::DATA_SCHEMA_PATH, &sample["data"]);
    assert!(errors.is_empty(), "{name} data: {errors:?}");
}

/// Every sample: named `<type>.json` or `<type>.<change>.json`, valid against its type's
/// committed schemas. A sample of an unknown type fails, and so does a type without its
/// plain `<type>.json` sample.
#[test]
fn every_sample_validates_against_the_committed_schemas_of_its_type() {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(samples_dir()).expect("the samples folder") {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let sample = read(&path);
        if name.starts_with(UserRegisteredV1::TYPE) {
            check_sample::<UserRegisteredV1>(&name, &sample);
        } else if name.starts_with(UserDeletedV1::TYPE) {
            check_sample::<UserDeletedV1>(&name, &sample);
        } else {
            panic!("{name}: a sample of a type this test does not know; add it here");
        }
        checked.push(name);
    }
    for event_type in [UserRegisteredV1::TYPE, UserDeletedV1::TYPE] {
        let plain = format!("{event_type}.json");
        assert!(checked.contains(&plain), "{plain} is missing ({checked:?})");
    }
}

/// The data schemas name themselves with the URI the events carry as `dataschema`, so a
/// reader holding an event can find the schema of its `data` by `$id`.
#[test]
fn each_data_schema_is_named_by_its_dataschema_uri() {
    for (path, uri) in [
        (
            UserRegisteredV1::DATA_SCHEMA_PATH,
            UserRegisteredV1::DATASCHEMA,
        ),
        (UserDeletedV1::DATA_SCHEMA_PATH, UserDeletedV1::DATASCHEMA),
    ] {
        let schema = read(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(path),
        );
        assert_eq!(schema["$id"], uri, "{path}");
    }
}

/// The deletion sample decodes: it carries the user and the time, and nothing personal.
#[test]
fn the_user_deleted_v1_sample_decodes() {
    let body = std::fs::read(samples_dir().join("user.deleted.v1.json")).expect("sample");
    let event = decode::<UserDeletedV1>(Some(UserDeletedV1::TYPE), &body).expect("decodes");
    assert_eq!(event.subject, event.data.user_id.to_string());
    assert_eq!(event.sequence, 2, "the user's second event");
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
