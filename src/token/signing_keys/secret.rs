//! Reading the signing-key Secret, and what the leader does with what it read (pure).
//!
//! A Secret the operator cannot read in full (not JSON, an algorithm this version does not know,
//! a key that does not parse) is never overwritten: the leader writes nothing and reports it,
//! and every replica keeps the key ring it holds. Only a Secret that does not exist gets a first
//! key that signs at once.

use base64::{Engine, engine::general_purpose::STANDARD};
use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};

use super::lifecycle::{self as keys, DATA_KEY, KeyPolicy, KeyRing, StoredKeySet};
use crate::token::jwt::{Algorithm, KeyError, SigningKey};

/// What the key Secret holds, as far as this version of the operator can read it.
pub enum KeySecret {
    /// There is no key Secret: the leader creates the first key.
    Missing,
    /// Every key parsed.
    Readable { set: StoredKeySet, ring: KeyRing },
    /// Something in it cannot be read: it must not be replaced, and it replaces no key ring.
    Unreadable(Unreadable),
}

/// Why the key Secret cannot be read. The texts name places and algorithms, never key material
/// (serde's own messages can quote the offending value, so they are not used).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("the Secret has no {DATA_KEY}")]
    NoData,
    #[error("{DATA_KEY} is not valid JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error(
        "{DATA_KEY} key {index} has the algorithm {alg}, which this version does not know \
         (written by a newer version?)"
    )]
    UnknownAlgorithm { index: usize, alg: String },
    #[error("{DATA_KEY} is not a key set (line {line}, column {column})")]
    NotAKeySet { line: usize, column: usize },
    #[error("{DATA_KEY} key {index} ({alg}) is not a usable private key: {reason}")]
    BadKey {
        index: usize,
        alg: &'static str,
        reason: String,
    },
}

impl Unreadable {
    /// A bounded name of the problem (for logs and alerts).
    pub fn category(&self) -> &'static str {
        match self {
            Self::NoData => "no_data",
            Self::NotJson { .. } => "not_json",
            Self::UnknownAlgorithm { .. } => "unknown_algorithm",
            Self::NotAKeySet { .. } => "not_a_key_set",
            Self::BadKey { .. } => "bad_key",
        }
    }
}

/// Reads the key Secret (`None`: there is none).
pub fn read(secret: Option<&Secret>) -> KeySecret {
    let Some(secret) = secret else {
        return KeySecret::Missing;
    };
    match parse(secret) {
        Ok((set, ring)) => KeySecret::Readable { set, ring },
        Err(e) => KeySecret::Unreadable(e),
    }
}

fn parse(secret: &Secret) -> Result<(StoredKeySet, KeyRing), Unreadable> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .ok_or(Unreadable::NoData)?;
    let set: StoredKeySet =
        serde_json::from_slice(&bytes.0).map_err(|e| shape_error(&bytes.0, &e))?;
    let mut parsed = Vec::with_capacity(set.keys.len());
    for (index, key) in set.keys.iter().enumerate() {
        let signing = STANDARD
            .decode(&key.pkcs8)
            .map_err(|_| KeyError::Parse(key.alg, "not base64".into()))
            .and_then(|der| SigningKey::from_pkcs8(key.alg, &der))
            .map_err(|e| Unreadable::BadKey {
                index,
                alg: key.alg.as_str(),
                reason: match e {
                    KeyError::Parse(_, reason) => reason,
                    other => other.to_string(),
                },
            })?;
        parsed.push((key.clone(), signing));
    }
    Ok((set, KeyRing::from_parsed(parsed)))
}

/// Names what is wrong with JSON that is not a key set: an unknown algorithm if that is it,
/// else where serde stopped.
fn shape_error(bytes: &[u8], e: &serde_json::Error) -> Unreadable {
    let (line, column) = (e.line(), e.column());
    if e.is_syntax() || e.is_eof() {
        return Unreadable::NotJson { line, column };
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let unknown = value
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .find_map(|(index, key)| {
            let alg = key.get("alg")?.as_str()?;
            serde_json::from_value::<Algorithm>(alg.into())
                .is_err()
                .then(|| (index, shown(alg)))
        });
    match unknown {
        Some((index, alg)) => Unreadable::UnknownAlgorithm { index, alg },
        None => Unreadable::NotAKeySet { line, column },
    }
}

/// An algorithm name as it may appear in a log: short and plain, or not at all (a hand edit
/// could have put anything there, key material included).
fn shown(alg: &str) -> String {
    let plain = alg.len() <= 16
        && alg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if plain {
        format!("\"{alg}\"")
    } else {
        "(not shown: not an algorithm name)".to_owned()
    }
}

/// What the leader does with the key Secret.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyAction {
    /// Write this key set.
    Write(StoredKeySet),
    /// Nothing to change.
    Keep,
    /// The Secret cannot be read: write nothing, report this.
    Refuse(Unreadable),
}

/// The leader's decision: plan the readable set (or the first key for a missing one), and never
/// touch an unreadable one.
pub fn leader_action(
    secret: &KeySecret,
    rotate_request: Option<&str>,
    policy: &KeyPolicy,
    now: Timestamp,
    generate: impl FnMut(Algorithm) -> Result<Vec<u8>, KeyError>,
) -> Result<KeyAction, KeyError> {
    let current = match secret {
        KeySecret::Unreadable(e) => return Ok(KeyAction::Refuse(e.clone())),
        KeySecret::Missing => None,
        KeySecret::Readable { set, .. } => Some(set),
    };
    Ok(
        match keys::plan(current, rotate_request, policy, now, generate)? {
            Some(set) => KeyAction::Write(set),
            None => KeyAction::Keep,
        },
    )
}

#[cfg(test)]
#[path = "secret_tests.rs"]
mod tests;
