//! Signing keys: stored in one Secret in the operator's namespace (`m2m-signing-keys`, key
//! `keys.json`), created and rotated by the leader, read by every replica.
//!
//! Lifecycle of a key: created with an `activeFrom` in the future (published in the JWKS, not yet
//! used) -> active (the newest key whose `activeFrom` has passed signs; every replica switches at
//! the same instant without another write) -> retired when a newer key activates (still published)
//! -> removed once every token it signed has expired (`retiredAt` + the longest token lifetime +
//! clock skew). Only the very first key signs at once: nothing can have cached an older JWKS.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::token::jwt::{Algorithm, KeyError, SigningKey};

/// Name of the Secret holding the signing keys.
pub const KEYS_SECRET: &str = "m2m-signing-keys";
/// Data key of the key set JSON.
pub const DATA_KEY: &str = "keys.json";

/// One stored private key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredKey {
    pub alg: Algorithm,
    /// PKCS#8 DER, base64.
    pub pkcs8: String,
    pub created_at: Timestamp,
    /// From when this key signs (if it is the newest such key).
    pub active_from: Timestamp,
    /// When a newer key took over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<Timestamp>,
}

/// The stored key set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredKeySet {
    pub keys: Vec<StoredKey>,
    /// The last `m2m.dev/rotate` annotation value acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_rotate_request: Option<String>,
}

/// How keys rotate.
#[derive(Clone, Debug)]
pub struct KeyPolicy {
    pub alg: Algorithm,
    /// A key signs for this long before the next one takes over.
    pub rotate_every: Duration,
    /// A new key is published this long before it signs (longer than verifiers cache the JWKS).
    pub publish_ahead: Duration,
    /// A retired key stays published this long (the longest token lifetime plus clock skew).
    pub keep_retired: Duration,
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// The key that signs at `now`: the newest whose `activeFrom` has passed.
pub fn active_index(keys: &[StoredKey], now: Timestamp) -> Option<usize> {
    keys.iter()
        .enumerate()
        .filter(|(_, k)| k.active_from <= now)
        .max_by_key(|(_, k)| (k.active_from, k.created_at))
        .map(|(i, _)| i)
}

/// The next state of the key set, or `None` when nothing needs writing. `generate` makes a new
/// PKCS#8 key (injected so the policy stays pure).
pub fn plan(
    current: Option<&StoredKeySet>,
    rotate_request: Option<&str>,
    policy: &KeyPolicy,
    now: Timestamp,
    mut generate: impl FnMut(Algorithm) -> Result<Vec<u8>, KeyError>,
) -> Result<Option<StoredKeySet>, KeyError> {
    let mut set = current.cloned().unwrap_or_default();
    let mut new_key = |active_from: Timestamp| -> Result<StoredKey, KeyError> {
        Ok(StoredKey {
            alg: policy.alg,
            pkcs8: STANDARD.encode(generate(policy.alg)?),
            created_at: now,
            active_from,
            retired_at: None,
        })
    };
    if set.keys.is_empty() {
        set.keys.push(new_key(now)?);
        set.handled_rotate_request = rotate_request.map(str::to_owned);
        return Ok(Some(set));
    }
    // Retire every key older than the active one.
    if let Some(active) = active_index(&set.keys, now) {
        let active_from = set.keys[active].active_from;
        for (i, key) in set.keys.iter_mut().enumerate() {
            if i != active && key.active_from <= active_from && key.retired_at.is_none() {
                key.retired_at = Some(active_from);
            }
        }
    }
    // Drop retired keys whose tokens have all expired.
    set.keys.retain(|k| {
        k.retired_at
            .is_none_or(|r| add(r, policy.keep_retired) > now)
    });

    let upcoming = set.keys.iter().any(|k| k.active_from > now);
    let active = active_index(&set.keys, now).map(|i| set.keys[i].clone());
    let requested =
        rotate_request.is_some() && rotate_request != set.handled_rotate_request.as_deref();
    if !upcoming {
        let earliest = add(now, policy.publish_ahead);
        let due = match &active {
            None => Some(earliest),
            Some(k) if k.alg != policy.alg || requested => Some(earliest),
            Some(k) => {
                let scheduled = add(k.active_from, policy.rotate_every);
                (add(now, policy.publish_ahead) >= scheduled).then(|| scheduled.max(earliest))
            }
        };
        if let Some(active_from) = due {
            set.keys.push(new_key(active_from)?);
        }
    }
    if requested {
        set.handled_rotate_request = rotate_request.map(str::to_owned);
    }
    Ok((Some(&set) != current).then_some(set))
}

/// The parsed key set every replica signs and publishes with.
#[derive(Default)]
pub struct KeyRing {
    keys: Vec<(StoredKey, SigningKey)>,
}

impl KeyRing {
    /// A ring of keys parsed already ([`super::secret::read`] parses the Secret, and refuses
    /// a set with any key that does not parse).
    pub fn from_parsed(keys: Vec<(StoredKey, SigningKey)>) -> Self {
        Self { keys }
    }

    /// Parses every stored key once; keys that do not parse are skipped and logged. For fixtures
    /// and tests: the operator reads the key Secret with [`super::secret::read`].
    pub fn from_stored(set: &StoredKeySet) -> Self {
        let keys = set
            .keys
            .iter()
            .filter_map(|k| {
                let parsed = STANDARD
                    .decode(&k.pkcs8)
                    .map_err(|e| KeyError::Parse(k.alg, e.to_string()))
                    .and_then(|der| SigningKey::from_pkcs8(k.alg, &der));
                match parsed {
                    Ok(key) => Some((k.clone(), key)),
                    Err(e) => {
                        tracing::error!(error = %e, "skipping an unreadable signing key");
                        None
                    }
                }
            })
            .collect();
        Self { keys }
    }

    /// The key that signs at `now`.
    pub fn active(&self, now: Timestamp) -> Option<&SigningKey> {
        self.keys
            .iter()
            .filter(|(s, _)| s.active_from <= now)
            .max_by_key(|(s, _)| (s.active_from, s.created_at))
            .map(|(_, k)| k)
    }

    /// Every published key (upcoming, active and retired-but-kept).
    pub fn published(&self) -> impl Iterator<Item = &SigningKey> {
        self.keys.iter().map(|(_, k)| k)
    }

    /// The key with this `kid`.
    pub fn by_kid(&self, kid: &str) -> Option<&SigningKey> {
        self.published().find(|k| k.kid == kid)
    }

    /// When the set next changes by itself (an upcoming key activating).
    pub fn next_activation(&self, now: Timestamp) -> Option<Timestamp> {
        self.keys
            .iter()
            .map(|(s, _)| s.active_from)
            .filter(|t| *t > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn policy() -> KeyPolicy {
        KeyPolicy {
            alg: Algorithm::ES256,
            rotate_every: Duration::from_secs(1000),
            publish_ahead: Duration::from_secs(100),
            keep_retired: Duration::from_secs(50),
        }
    }

    fn fake(_: Algorithm) -> Result<Vec<u8>, KeyError> {
        Ok(vec![1, 2, 3])
    }

    fn step(set: Option<&StoredKeySet>, req: Option<&str>, now: i64) -> Option<StoredKeySet> {
        plan(set, req, &policy(), t(now), fake).unwrap()
    }

    #[test]
    fn the_first_key_signs_at_once() {
        let set = step(None, None, 0).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].active_from, t(0));
        assert_eq!(step(Some(&set), None, 10), None, "nothing to do");
    }

    #[test]
    fn a_scheduled_rotation_publishes_ahead_then_retires_then_removes() {
        let mut set = step(None, None, 0).unwrap();
        assert_eq!(step(Some(&set), None, 899), None);
        set = step(Some(&set), None, 900).unwrap();
        assert_eq!(set.keys.len(), 2);
        assert_eq!(
            set.keys[1].active_from,
            t(1000),
            "published 100s before it signs"
        );
        assert_eq!(active_index(&set.keys, t(999)), Some(0));
        assert_eq!(active_index(&set.keys, t(1000)), Some(1));
        set = step(Some(&set), None, 1000).unwrap();
        assert_eq!(
            set.keys[0].retired_at,
            Some(t(1000)),
            "kept while its tokens live"
        );
        assert_eq!(set.keys.len(), 2);
        set = step(Some(&set), None, 1050).unwrap();
        assert_eq!(set.keys.len(), 1, "removed after keep_retired");
        assert_eq!(set.keys[0].active_from, t(1000));
    }

    #[test]
    fn a_requested_rotation_happens_once_per_value_and_still_publishes_ahead() {
        let set = step(None, Some("a"), 0).unwrap();
        assert_eq!(
            step(Some(&set), Some("a"), 10),
            None,
            "the value at creation is handled"
        );
        let set = step(Some(&set), Some("b"), 10).unwrap();
        assert_eq!(set.keys.len(), 2);
        assert_eq!(set.keys[1].active_from, t(110));
        assert_eq!(set.handled_rotate_request.as_deref(), Some("b"));
        assert_eq!(step(Some(&set), Some("b"), 20), None);
    }

    #[test]
    fn an_overdue_rotation_after_downtime_still_publishes_ahead() {
        let set = step(None, None, 0).unwrap();
        let set = step(Some(&set), None, 5000).unwrap();
        assert_eq!(set.keys[1].active_from, t(5100));
        assert_eq!(
            active_index(&set.keys, t(5050)),
            Some(0),
            "the old key signs meanwhile"
        );
    }

    #[test]
    fn a_changed_algorithm_rotates() {
        let set = step(None, None, 0).unwrap();
        let mut p = policy();
        p.alg = Algorithm::EdDSA;
        let next = plan(Some(&set), None, &p, t(10), fake).unwrap().unwrap();
        assert_eq!(next.keys[1].alg, Algorithm::EdDSA);
        assert_eq!(next.keys[1].active_from, t(110));
    }

    #[test]
    fn the_ring_picks_the_active_key_by_time() {
        let mut set = StoredKeySet::default();
        for (i, from) in [(0, 0), (1, 100)] {
            let der = crate::token::jwt::generate_pkcs8(Algorithm::ES256).unwrap();
            set.keys.push(StoredKey {
                alg: Algorithm::ES256,
                pkcs8: STANDARD.encode(der),
                created_at: t(i),
                active_from: t(from),
                retired_at: None,
            });
        }
        let ring = KeyRing::from_stored(&set);
        let first = ring.active(t(99)).unwrap().kid.clone();
        let second = ring.active(t(100)).unwrap().kid.clone();
        assert_ne!(first, second);
        assert_eq!(
            ring.published().count(),
            2,
            "the upcoming key is published before it signs"
        );
        assert_eq!(ring.next_activation(t(50)), Some(t(100)));
    }
}
