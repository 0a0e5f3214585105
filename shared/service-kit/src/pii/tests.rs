use super::*;

const KEY_A: &str = "a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_B: &str = "b:Hx4dHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";
const LOOKUP: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn sealer(keys: &str) -> Sealer {
    settings(keys, LOOKUP).sealer().expect("valid keys")
}

fn settings(keys: &str, lookup: &str) -> PiiSettings {
    PiiSettings {
        pii_keys: Some(keys.to_owned()),
        pii_keys_file: None,
        pii_lookup_key: Some(lookup.to_owned()),
        pii_lookup_key_file: None,
    }
}

#[test]
fn a_sealed_value_opens_and_does_not_show_the_text() {
    let sealer = sealer(KEY_A);
    let sealed = sealer.seal("users.email", "ada@example.com").unwrap();
    assert!(!sealed.windows(3).any(|w| w == b"ada"));
    assert_eq!(
        sealer.open("users.email", &sealed).unwrap(),
        "ada@example.com"
    );
    // A fresh nonce each time: equal values do not seal alike.
    assert_ne!(
        sealer.seal("users.email", "ada@example.com").unwrap(),
        sealed
    );
}

#[test]
fn a_value_moved_to_another_column_or_altered_does_not_open() {
    let sealer = sealer(KEY_A);
    let mut sealed = sealer.seal("users.email", "ada@example.com").unwrap();
    assert!(matches!(
        sealer.open("users.display_name", &sealed),
        Err(PiiError::Unreadable("users.display_name"))
    ));
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    assert!(matches!(
        sealer.open("users.email", &sealed),
        Err(PiiError::Unreadable(_))
    ));
    assert!(matches!(
        sealer.open("users.email", b""),
        Err(PiiError::Unreadable(_))
    ));
    assert!(matches!(
        sealer.open("users.email", b"ada"),
        Err(PiiError::Unreadable(_))
    ));
}

#[test]
fn after_a_rotation_old_values_open_and_new_ones_use_the_new_key() {
    let before = sealer(KEY_A);
    let old = before.seal("users.email", "ada@example.com").unwrap();
    let after = sealer(&format!("{KEY_B},{KEY_A}"));
    assert_eq!(after.open("users.email", &old).unwrap(), "ada@example.com");
    assert!(!after.is_current(&old));
    let new = after.seal("users.email", "ada@example.com").unwrap();
    assert!(after.is_current(&new));
    // Once the old key is dropped, what it sealed is named in the error.
    let dropped = sealer(KEY_B);
    assert!(
        matches!(dropped.open("users.email", &old), Err(PiiError::UnknownKey(id)) if id == "a")
    );
}

#[test]
fn lookup_hashes_are_equal_for_equal_values_and_depend_on_key_and_column() {
    let sealer = sealer(KEY_A);
    let hash = sealer.lookup_hash("users.email", "ada@example.com");
    assert_eq!(hash, sealer.lookup_hash("users.email", "ada@example.com"));
    assert_ne!(hash, sealer.lookup_hash("users.email", "bob@example.com"));
    assert_ne!(
        hash,
        sealer.lookup_hash("welcome_mails.recipient", "ada@example.com")
    );
    let other_key = settings(KEY_A, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .sealer()
        .unwrap();
    assert_ne!(
        hash,
        other_key.lookup_hash("users.email", "ada@example.com")
    );
}

#[test]
fn unusable_keys_are_refused_without_repeating_them() {
    let refused = |keys: &str, lookup: &str| {
        settings(keys, lookup)
            .sealer()
            .expect_err("refused")
            .to_string()
    };
    assert!(refused("", LOOKUP).contains("PII_KEYS (or PII_KEYS_FILE) is required"));
    assert!(refused("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", LOOKUP).contains("entry 1"));
    assert!(refused("a:c2hvcnQ=", LOOKUP).contains("entry 1"));
    assert!(refused(&format!("{KEY_A},bad id:{}", &KEY_B[2..]), LOOKUP).contains("entry 2"));
    assert!(refused(&format!("{KEY_A},{KEY_A}"), LOOKUP).contains("given twice"));
    let message = refused(KEY_A, "c2hvcnQ=");
    assert!(message.contains("PII_LOOKUP_KEY") && !message.contains("c2hvcnQ"));
    let message = format!("{:?}", settings(KEY_A, LOOKUP));
    assert!(!message.contains(&KEY_A[2..]) && !message.contains(LOOKUP));
}

#[test]
fn keys_can_come_from_files() {
    let dir = std::env::temp_dir().join(format!("pii-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keys"), format!("{KEY_B}\n{KEY_A}\n")).unwrap();
    std::fs::write(dir.join("lookup"), format!("{LOOKUP}\n")).unwrap();
    let from_files = PiiSettings {
        pii_keys: None,
        pii_keys_file: Some(dir.join("keys")),
        pii_lookup_key: None,
        pii_lookup_key_file: Some(dir.join("lookup")),
    }
    .sealer()
    .unwrap();
    let sealed = sealer(KEY_A).seal("profiles.display_name", "Ada").unwrap();
    assert_eq!(
        from_files.open("profiles.display_name", &sealed).unwrap(),
        "Ada"
    );
    assert!(from_files.is_current(&from_files.seal("profiles.display_name", "Ada").unwrap()));
    std::fs::remove_dir_all(dir).unwrap();
}
