//! Client secret verification: argon2id against the client record's hashes on a bounded pool,
//! and a keyed in-memory proof of each secret that verified once, so later requests with the
//! same secret take microseconds. A proof is only used while the hash it was checked against is
//! still accepted, so a rotation or revocation drops it.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use aws_lc_rs::{constant_time, hmac, rand::SecureRandom};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::Semaphore;

use crate::credentials::{
    hash,
    record::{ClientRecord, SecretKind},
};

/// Proofs kept per client (during a grace period, two secrets are in use).
const PROOFS_PER_CLIENT: usize = 3;

struct Proof {
    tag: Vec<u8>,
    phc: String,
}

/// The pool is full.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

/// How secrets are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// argon2id PHC hashes, remembered through keyed proofs (what the operator runs).
    Argon2,
    /// `current` holds a hex SHA-256 of the secret; checked directly. Only the benchmark's
    /// baseline uses this, to show what the argon2id design costs in steady state.
    PlainSha256Baseline,
}

pub struct Verifier {
    mode: Mode,
    key: hmac::Key,
    proofs: Mutex<HashMap<String, Vec<Proof>>>,
    pool: Semaphore,
    waiting: AtomicUsize,
    max_in_flight: usize,
}

impl Verifier {
    /// `workers`: argon2 checks at a time; `max_in_flight`: checks admitted at once (running and queued) before refusing.
    pub fn new(workers: usize, max_in_flight: usize) -> Self {
        let mut key = [0u8; 32];
        // A failing OS RNG leaves a zero key: proofs still work, they are just not secret-keyed.
        let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut key);
        Self {
            mode: Mode::Argon2,
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            proofs: Mutex::new(HashMap::new()),
            pool: Semaphore::new(workers.max(1)),
            waiting: AtomicUsize::new(0),
            max_in_flight,
        }
    }

    /// The benchmark baseline: records hold a hex SHA-256 of the secret instead of a PHC
    /// string. Never used by the operator.
    pub fn plain_sha256_baseline() -> Self {
        Self {
            mode: Mode::PlainSha256Baseline,
            ..Self::new(1, 1)
        }
    }

    fn tag(&self, client_id: &str, secret: &str) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(client_id.as_bytes());
        ctx.update(&[0]);
        ctx.update(secret.as_bytes());
        ctx.sign().as_ref().to_vec()
    }

    /// The fast path: whether this secret already verified against a hash still accepted.
    pub fn remembered(
        &self,
        client_id: &str,
        secret: &str,
        record: &ClientRecord,
        now: Timestamp,
    ) -> Option<SecretKind> {
        if self.mode == Mode::PlainSha256Baseline {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            return constant_time::verify_slices_are_equal(
                hex.as_bytes(),
                record.current.as_str().as_bytes(),
            )
            .ok()
            .map(|()| SecretKind::Current);
        }
        let tag = self.tag(client_id, secret);
        let proofs = self.proofs.lock().ok()?;
        let mut found = None;
        // Compare against every proof in constant time, whatever matches first.
        for proof in proofs.get(client_id).into_iter().flatten() {
            if constant_time::verify_slices_are_equal(&proof.tag, &tag).is_ok() {
                found = record
                    .accepted_hashes(now)
                    .find(|(h, _)| h.as_str() == proof.phc)
                    .map(|(_, kind)| kind);
            }
        }
        found
    }

    /// The slow path: argon2id against every accepted hash, on the pool. `Err(Busy)` when too
    /// many checks are already waiting.
    pub async fn verify(
        &self,
        client_id: &str,
        secret: &str,
        record: &ClientRecord,
        now: Timestamp,
    ) -> Result<Option<SecretKind>, Busy> {
        if self.mode == Mode::PlainSha256Baseline {
            return Ok(None);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_in_flight {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let permit = self.pool.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let _permit = permit.map_err(|_| Busy)?;
        let candidates: Vec<_> = record
            .accepted_hashes(now)
            .map(|(h, kind)| (h.clone(), kind))
            .collect();
        let presented = secret.to_owned();
        let matched = tokio::task::spawn_blocking(move || {
            candidates
                .into_iter()
                .find(|(h, _)| hash::verify(&presented, h))
        })
        .await
        .map_err(|_| Busy)?;
        if let Some((phc, _)) = &matched
            && let Ok(mut proofs) = self.proofs.lock()
        {
            let list = proofs.entry(client_id.to_owned()).or_default();
            list.retain(|p| p.phc != phc.as_str());
            list.push(Proof {
                tag: self.tag(client_id, secret),
                phc: phc.as_str().to_owned(),
            });
            if list.len() > PROOFS_PER_CLIENT {
                list.remove(0);
            }
        }
        Ok(matched.map(|(_, kind)| kind))
    }

    /// Forgets clients that no longer exist.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        if let Ok(mut proofs) = self.proofs.lock() {
            proofs.retain(|id, _| keep(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{
        generate::ClientSecret,
        record::{AppKey, Previous},
    };

    fn record(secret: &str) -> ClientRecord {
        ClientRecord {
            client_id: "m2m_1".into(),
            app: AppKey {
                namespace: "n".into(),
                name: "a".into(),
                uid: "u".into(),
            },
            current: hash::hash(&ClientSecret::new(secret)).unwrap(),
            pending: None,
            previous: None,
            revision: 1,
            last_rotation_time: Timestamp::UNIX_EPOCH,
            handled_rotate_request: None,
            handled_revoke_request: None,
        }
    }

    #[tokio::test]
    async fn verifies_once_then_remembers_until_the_hash_is_dropped() {
        let v = Verifier::new(2, 10);
        let now = Timestamp::UNIX_EPOCH;
        let mut rec = record("right");
        assert_eq!(v.remembered("m2m_1", "right", &rec, now), None);
        assert_eq!(v.verify("m2m_1", "wrong", &rec, now).await, Ok(None));
        assert_eq!(
            v.verify("m2m_1", "right", &rec, now).await,
            Ok(Some(SecretKind::Current))
        );
        assert_eq!(
            v.remembered("m2m_1", "right", &rec, now),
            Some(SecretKind::Current)
        );
        assert_eq!(v.remembered("m2m_1", "wrong", &rec, now), None);
        assert_eq!(
            v.remembered("m2m_2", "right", &rec, now),
            None,
            "proofs are per client"
        );

        // Rotated: the old hash becomes previous, then expires.
        let old = rec.current.clone();
        rec.current = hash::hash(&ClientSecret::new("new")).unwrap();
        rec.previous = Some(Previous {
            hash: old,
            expires_at: Timestamp::from_second(10).unwrap(),
        });
        assert_eq!(
            v.remembered("m2m_1", "right", &rec, now),
            Some(SecretKind::Previous)
        );
        let later = Timestamp::from_second(10).unwrap();
        assert_eq!(v.remembered("m2m_1", "right", &rec, later), None);
        assert_eq!(v.verify("m2m_1", "right", &rec, later).await, Ok(None));
    }

    #[tokio::test]
    async fn the_benchmark_baseline_checks_a_plain_digest() {
        let v = Verifier::plain_sha256_baseline();
        let mut rec = record("unused");
        let hex: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"right")
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        rec.current = serde_json::from_value(serde_json::Value::String(hex)).unwrap();
        let now = Timestamp::UNIX_EPOCH;
        assert_eq!(
            v.remembered("m2m_1", "right", &rec, now),
            Some(SecretKind::Current)
        );
        assert_eq!(v.remembered("m2m_1", "wrong", &rec, now), None);
    }

    #[tokio::test]
    async fn retain_forgets_the_proofs_of_removed_clients() {
        let v = Verifier::new(1, 4);
        let rec = record("right");
        let now = Timestamp::UNIX_EPOCH;
        assert_eq!(
            v.verify("m2m_1", "right", &rec, now).await,
            Ok(Some(SecretKind::Current))
        );
        v.retain(|id| id != "m2m_1");
        assert_eq!(v.remembered("m2m_1", "right", &rec, now), None);
    }

    #[tokio::test]
    async fn a_full_queue_is_busy() {
        let v = Verifier::new(1, 0);
        let rec = record("right");
        assert_eq!(
            v.verify("m2m_1", "right", &rec, Timestamp::UNIX_EPOCH)
                .await,
            Err(Busy)
        );
    }
}
