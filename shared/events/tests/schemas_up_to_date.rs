//! The committed JSON Schemas must match the Rust types. When they drift this test writes
//! the regenerated schema over the committed one and fails, so the diff shows up in review
//! (the rust-analyzer `ensure_file_contents` pattern). Outside CI, run the test again to see
//! it pass, then commit the file.

use std::path::{Path, PathBuf};

use events::{DATASCHEMA_PREFIX, Envelope, Event, UserDeletedV1, UserRegisteredV1};

fn repository_file(path: &str) -> PathBuf {
    // The paths in `Event` are relative to the repository root, two levels above this crate.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn pretty(schema: &schemars::Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema serialises");
    text.push('\n');
    text
}

/// The schema of the whole message: the envelope with `T` as its `data`.
fn envelope_schema<T: Event>() -> String {
    pretty(&schemars::schema_for!(Envelope<T>))
}

/// The schema of `data` alone, named by its `dataschema` URI as `$id`.
fn data_schema<T: Event>() -> String {
    let mut schema = schemars::schema_for!(T);
    schema.insert("$id".to_owned(), T::DATASCHEMA.into());
    pretty(&schema)
}

/// Compares `generated` with the file; on a difference rewrites it and panics.
fn ensure_file_contents(path: &Path, generated: &str) {
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed.replace("\r\n", "\n") == generated {
        return;
    }
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).expect("the schema folder can be created");
    }
    std::fs::write(path, generated).expect("the schema file is writable");
    panic!(
        "{} was out of date and has been regenerated; review and commit it",
        path.display()
    );
}

/// Both committed schemas of `T` are current, and its names follow the rules.
fn ensure_schemas<T: Event>() {
    assert_eq!(
        T::DATASCHEMA,
        format!("{DATASCHEMA_PREFIX}{}", T::TYPE),
        "dataschema is the prefix and the type"
    );
    assert_eq!(
        T::SCHEMA_PATH,
        format!("shared/events/schemas/{}.json", T::TYPE)
    );
    assert_eq!(
        T::DATA_SCHEMA_PATH,
        format!("shared/events/schemas/data/{}.json", T::TYPE)
    );
    ensure_file_contents(&repository_file(T::SCHEMA_PATH), &envelope_schema::<T>());
    ensure_file_contents(&repository_file(T::DATA_SCHEMA_PATH), &data_schema::<T>());
}

#[test]
fn user_registered_v1_schemas_are_committed_and_current() {
    ensure_schemas::<UserRegisteredV1>();
}

#[test]
fn user_deleted_v1_schemas_are_committed_and_current() {
    ensure_schemas::<UserDeletedV1>();
}

#[test]
fn a_real_event_validates_against_the_committed_schema() {
    let text = std::fs::read_to_string(repository_file(UserRegisteredV1::SCHEMA_PATH))
        .expect("schema exists");
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
