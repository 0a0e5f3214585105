//! The keys, from the environment or from files (Docker and Kubernetes secrets).

use std::path::{Path, PathBuf};

use base64::{Engine, engine::general_purpose::STANDARD};

use super::Sealer;

/// Where the keys that protect personal data come from. Required: a service that holds
/// personal data does not start without them (there is no built-in key to forget to
/// replace). Make a key with `openssl rand -base64 32`.
#[derive(Clone, clap::Args)]
pub struct PiiSettings {
    /// The keys that seal personal data at rest, newest first: `ID:BASE64` entries (an id
    /// of 1 to 32 letters, digits, `-` or `_`, and 32 random bytes in base64), separated by
    /// commas. The first seals what is written; all of them open what they sealed.
    #[arg(long, env = "PII_KEYS", hide_env_values = true)]
    pub pii_keys: Option<String>,
    /// A file holding `PII_KEYS` (one entry a line, or comma-separated); used when
    /// `PII_KEYS` is not set.
    #[arg(long, env = "PII_KEYS_FILE")]
    pub pii_keys_file: Option<PathBuf>,
    /// The key of the keyed hashes stored for lookups and uniqueness (32 random bytes in
    /// base64). Long-lived: changing it makes every stored hash miss.
    #[arg(long, env = "PII_LOOKUP_KEY", hide_env_values = true)]
    pub pii_lookup_key: Option<String>,
    /// A file holding `PII_LOOKUP_KEY`; used when `PII_LOOKUP_KEY` is not set.
    #[arg(long, env = "PII_LOOKUP_KEY_FILE")]
    pub pii_lookup_key_file: Option<PathBuf>,
}

/// Never prints a key.
impl std::fmt::Debug for PiiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiiSettings")
            .field("pii_keys_file", &self.pii_keys_file)
            .field("pii_lookup_key_file", &self.pii_lookup_key_file)
            .finish_non_exhaustive()
    }
}

/// Keys that are missing or unusable. No message repeats a key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Neither the variable nor its file is set.
    #[error("{0} (or {0}_FILE) is required: the keys that protect personal data at rest")]
    Missing(&'static str),
    /// The file is missing or unreadable.
    #[error("{variable}: cannot read {path}: {source}")]
    Unreadable {
        /// `PII_KEYS_FILE` or `PII_LOOKUP_KEY_FILE`.
        variable: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An entry is not `ID:BASE64` with a usable id and 32 bytes.
    #[error(
        "{variable}: entry {position} is not ID:BASE64 with an id of 1 to 32 of [A-Za-z0-9_-] and 32 bytes"
    )]
    Malformed {
        /// `PII_KEYS` or `PII_LOOKUP_KEY`.
        variable: &'static str,
        /// 1-based.
        position: usize,
    },
    /// Two entries share an id, so a sealed value could not say which key it needs.
    #[error("PII_KEYS: the id {0:?} is given twice")]
    DuplicateId(String),
}

impl PiiSettings {
    /// The sealer these settings describe.
    pub fn sealer(&self) -> Result<Sealer, SettingsError> {
        let keys = value(
            "PII_KEYS",
            self.pii_keys.as_deref(),
            self.pii_keys_file.as_deref(),
        )?;
        let mut sealing: Vec<(String, [u8; 32])> = Vec::new();
        let entries = keys
            .split([',', '\n'])
            .map(str::trim)
            .filter(|entry| !entry.is_empty());
        for (index, entry) in entries.enumerate() {
            let malformed = || SettingsError::Malformed {
                variable: "PII_KEYS",
                position: index + 1,
            };
            let (id, key) = entry.split_once(':').ok_or_else(malformed)?;
            let usable_id = (1..=32).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !usable_id {
                return Err(malformed());
            }
            let key = decode_key(key).ok_or_else(malformed)?;
            if sealing.iter().any(|(seen, _)| seen == id) {
                return Err(SettingsError::DuplicateId(id.to_owned()));
            }
            sealing.push((id.to_owned(), key));
        }
        if sealing.is_empty() {
            return Err(SettingsError::Missing("PII_KEYS"));
        }
        let lookup = value(
            "PII_LOOKUP_KEY",
            self.pii_lookup_key.as_deref(),
            self.pii_lookup_key_file.as_deref(),
        )?;
        let lookup = decode_key(lookup.trim()).ok_or(SettingsError::Malformed {
            variable: "PII_LOOKUP_KEY",
            position: 1,
        })?;
        Ok(Sealer::new(sealing, &lookup))
    }
}

/// The variable's value, or its file's content.
fn value(
    variable: &'static str,
    given: Option<&str>,
    file: Option<&Path>,
) -> Result<String, SettingsError> {
    if let Some(given) = given.filter(|given| !given.trim().is_empty()) {
        return Ok(given.to_owned());
    }
    let Some(path) = file else {
        return Err(SettingsError::Missing(variable));
    };
    std::fs::read_to_string(path).map_err(|source| SettingsError::Unreadable {
        variable: if variable == "PII_KEYS" {
            "PII_KEYS_FILE"
        } else {
            "PII_LOOKUP_KEY_FILE"
        },
        path: path.to_owned(),
        source,
    })
}

/// 32 bytes from base64, or nothing.
fn decode_key(base64: &str) -> Option<[u8; 32]> {
    STANDARD.decode(base64.trim()).ok()?.try_into().ok()
}
