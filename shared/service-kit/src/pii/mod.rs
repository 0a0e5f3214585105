//! Personal data sealed at rest: a copied database, dump or backup shows neither a user's
//! address nor their name.
//!
//! Each service seals the columns that hold personal data with AES-256-GCM under a key of
//! its own configuration ([`PiiSettings`]), and stores beside a column it must look up by
//! (an address: the uniqueness check, `GET /emails?to=`) a keyed hash of it
//! (HMAC-SHA-256): equal values have equal hashes, but without the key a hash says
//! nothing, and it cannot be brute-forced from a list of likely addresses.
//!
//! A sealed value names the key that sealed it, so keys rotate without a flag day: put a
//! new key first in `PII_KEYS` (it seals everything written from then on, and the old ones
//! still open what they sealed), restart (each service re-seals its old rows at start,
//! [`SealedTable::reseal`]), then drop the old key. The lookup key cannot rotate that way (every stored hash would have to be
//! recomputed from the opened values at once): it is long-lived, and a leak of it alone
//! reveals nothing without the data. See docs/decisions/0014.
//!
//! The sealed form, stored as `bytea`: a format byte (1), the key id's length and bytes,
//! a 96-bit random nonce, then the ciphertext and its tag. The column's name is the
//! associated data, so a value copied into another column does not open.

mod reseal;
mod settings;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    hmac,
    rand::{SecureRandom, SystemRandom},
};

pub use reseal::{ResealError, SealedColumn, SealedTable};
pub use settings::{PiiSettings, SettingsError};

/// The first byte of every sealed value; a later format would take another.
const FORMAT: u8 = 1;

/// Where a sealed value belongs, e.g. `users.email`: bound into the ciphertext as its
/// associated data and into the keyed hash, so neither means anything in another column.
pub type Column = &'static str;

/// A value that did not open.
#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    /// Sealed under a key that is no longer configured: it was dropped from `PII_KEYS`
    /// before the rows it sealed were re-sealed.
    #[error("sealed with key {0:?}, which PII_KEYS no longer holds")]
    UnknownKey(String),
    /// Not a sealed value, or one whose bytes or column were changed.
    #[error("not a sealed value of {0}, or altered")]
    Unreadable(Column),
    /// The system's random number generator failed (a nonce could not be drawn).
    #[error("no randomness for a nonce")]
    NoRandomness,
}

/// To the database layer a value that does not open is one it cannot decode (a 500 with
/// the cause in the log, a retried delivery), and a value that cannot be sealed one it
/// cannot encode; so store functions keep returning `sqlx::Error`.
impl From<PiiError> for sqlx::Error {
    fn from(error: PiiError) -> Self {
        match error {
            PiiError::NoRandomness => Self::Encode(Box::new(error)),
            PiiError::UnknownKey(_) | PiiError::Unreadable(_) => Self::Decode(Box::new(error)),
        }
    }
}

/// Seals and opens personal data, and hashes the values looked up by. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    keys: Arc<Keys>,
}

/// Never prints a key.
impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("sealing_key", &self.keys.sealing[0].id)
            .finish_non_exhaustive()
    }
}

struct Keys {
    /// The first seals; all open.
    sealing: Vec<SealingKey>,
    lookup: hmac::Key,
    random: SystemRandom,
}

struct SealingKey {
    id: String,
    key: LessSafeKey,
}

impl Sealer {
    /// A sealer with these keys: `sealing` newest first (at least one), each an id and 32
    /// bytes, and the 32-byte lookup key. Use [`PiiSettings::sealer`] to build one from the
    /// configuration.
    fn new(sealing: Vec<(String, [u8; 32])>, lookup: &[u8; 32]) -> Self {
        let sealing = sealing
            .into_iter()
            .map(|(id, bytes)| SealingKey {
                id,
                key: LessSafeKey::new(
                    UnboundKey::new(&AES_256_GCM, &bytes).expect("a 32-byte key fits AES-256"),
                ),
            })
            .collect();
        Self {
            keys: Arc::new(Keys {
                sealing,
                lookup: hmac::Key::new(hmac::HMAC_SHA256, lookup),
                random: SystemRandom::new(),
            }),
        }
    }

    /// `plain` sealed under the current key for `column`.
    pub fn seal(&self, column: Column, plain: &str) -> Result<Vec<u8>, PiiError> {
        let key = &self.keys.sealing[0];
        let mut nonce = [0; NONCE_LEN];
        self.keys
            .random
            .fill(&mut nonce)
            .map_err(|_| PiiError::NoRandomness)?;
        // The id's length fits a byte: the settings refuse longer ids.
        let mut sealed = self.current_prefix();
        sealed.reserve(NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        sealed.extend_from_slice(&nonce);
        let mut in_out = plain.as_bytes().to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(column),
                &mut in_out,
            )
            .map_err(|_| PiiError::Unreadable(column))?;
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// The text sealed in `sealed` for `column`, under whichever configured key sealed it.
    pub fn open(&self, column: Column, sealed: &[u8]) -> Result<String, PiiError> {
        let unreadable = || PiiError::Unreadable(column);
        let (id, rest) = split_key_id(sealed).ok_or_else(unreadable)?;
        let key = self
            .keys
            .sealing
            .iter()
            .find(|key| key.id.as_bytes() == id)
            .ok_or_else(|| PiiError::UnknownKey(String::from_utf8_lossy(id).into_owned()))?;
        let (nonce, ciphertext) = rest.split_at_checked(NONCE_LEN).ok_or_else(unreadable)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unreadable())?;
        let mut in_out = ciphertext.to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(column), &mut in_out)
            .map_err(|_| unreadable())?;
        String::from_utf8(plain.to_vec()).map_err(|_| unreadable())
    }

    /// Whether `sealed` is under the current key already (re-sealing skips it).
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.starts_with(&self.current_prefix())
    }

    /// How every value sealed under the current key begins (the format byte and the key
    /// id): lets a query find the rows still under an older key, `substring(column from 1
    /// for length) <> prefix`, without opening them.
    pub fn current_prefix(&self) -> Vec<u8> {
        let id = self.keys.sealing[0].id.as_bytes();
        let mut prefix = vec![FORMAT, u8::try_from(id.len()).unwrap_or(u8::MAX)];
        prefix.extend_from_slice(id);
        prefix
    }

    /// The keyed hash of `value` for `column`: what a unique index or a lookup compares
    /// instead of the value. Callers normalise first (an address is trimmed and
    /// lower-cased before it is hashed, as before it is stored).
    pub fn lookup_hash(&self, column: Column, value: &str) -> Vec<u8> {
        let mut context = hmac::Context::with_key(&self.keys.lookup);
        context.update(column.as_bytes());
        context.update(&[0]);
        context.update(value.as_bytes());
        context.sign().as_ref().to_vec()
    }
}

/// The key id of a sealed value and what follows it, if it is one.
fn split_key_id(sealed: &[u8]) -> Option<(&[u8], &[u8])> {
    let [format, len, rest @ ..] = sealed else {
        return None;
    };
    if *format != FORMAT {
        return None;
    }
    rest.split_at_checked(usize::from(*len))
}
