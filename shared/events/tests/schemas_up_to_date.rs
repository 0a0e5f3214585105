//! The committed JSON Schemas must match the Rust types. When they drift this test writes
//! the regenerated schema over the committed one and fails, so the diff shows up in review
//! (the rust-analyzer `ensure_file_contents` pattern). Outside CI, run the test again to see
//! it pass, then commit the file.

use std::path::{Path, PathBuf};

use events::{Envelope, Event, UserRegisteredV1};
use schemars::JsonSchema;

fn schema_file<T: Event>() -> PathBuf {
    // SCHEMA_PATH is relative to the repository root, two levels above this crate.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(T::SCHEMA_PATH)
}

fn generate<T: JsonSchema>() -> String {
    let schema = schemars::schema_for!(T);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serialises");
    text.push('\n');
    text
}

/// Compares `generated` with the file; on a difference rewrites it and panics.
fn ensure_file_contents(path: &Path, generated: &str) {
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed.replace("\r\n", "\n") == generated {
        return;
    }
    std::fs::write(path, generated).expect("the schema file is writable");
    panic!(
        "{} was out of date and has been regenerated; review and commit it",
        path.display()
    );
}

#[test]
fn user_registered_v1_schema_is_committed_and_current() {
    ensure_file_contents(
        &schema_file::<UserRegisteredV1>(),
        &generate::<Envelope<UserRegisteredV1>>(),
    );
}

#[test]
fn a_real_event_validates_against_the_committed_schema() {
    let text = std::fs::read_to_string(schema_file::<UserRegisteredV1>()).expect("schema exists");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema is valid");
    let user_id = uuid::Uuid::now_v7();
    let event = Envelope::new(
        "/registration",
        user_id.to_string(),
        1,
        UserRegisteredV1 {
            user_id,
            email: "ada@example.org".to_owned(),
            display_name: "Ada".to_owned(),
            registered_at: chrono::Utc::now(),
        },
    );
    let instance = serde_json::to_value(&event).expect("event serialises");
    assert!(
        validator.is_valid(&instance),
        "{:?}",
        validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );

    let mut broken = instance.clone();
    broken["data"]["user_id"] = "not-a-uuid".into();
    broken["sequence"] = (-1).into();
    assert!(
        !validator.is_valid(&broken),
        "the schema must reject a negative sequence"
    );
}
