//! Client secret verification: argon2id against the client record's hashes on a bounded pool,
//! and a keyed in-memory proof of each secret that verified once, so later requests with the
//! same secret take microseconds. A proof is only used while the hash it was checked against is
//! still accepted, so a rotation or revocation drops it.
//!
//! Admission is safe against cancellation (a client that hangs up, the request timeout): the
//! admitted count is held by a guard, and the pool permit is owned and moved into the blocking
//! job together with that guard, so a job keeps its worker slot and its admission until it has
//! finished, whether or not anyone still waits for its result. However many requests are
//! dropped, at most `workers` argon2id jobs run at once and at most `max_in_flight` are
//! admitted (running or queued).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use aws_lc_rs::{constant_time, hmac, rand::SecureRandom};
use k8s_openapi::jiff::Timestamp;
use prometheus_client::metrics::gauge::Gauge;
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

/// The pool's gauges: argon2id jobs running, and checks admitted (running or queued).
#[derive(Clone, Debug, Default)]
pub struct PoolGauges {
    pub running: Gauge,
    pub admitted: Gauge,
}

/// One admitted check; leaving the admission when dropped.
struct Admitted(Gauge);

impl Admitted {
    /// Admits a check unless `max` are admitted already.
    fn enter(gauge: &Gauge, max: usize) -> Option<Self> {
        let before = gauge.inc();
        let guard = Self(gauge.clone());
        (usize::try_from(before).unwrap_or(usize::MAX) < max).then_some(guard)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts a job as running while it lives.
struct Running(Gauge);

impl Running {
    fn start(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub struct Verifier {
    key: hmac::Key,
    proofs: Mutex<HashMap<String, Vec<Proof>>>,
    pool: Arc<Semaphore>,
    gauges: PoolGauges,
    max_in_flight: usize,
}

impl Verifier {
    /// `workers`: argon2 checks at a time; `max_in_flight`: checks admitted at once (running and queued) before refusing.
    pub fn new(workers: usize, max_in_flight: usize) -> Self {
        let mut key = [0u8; 32];
        // A failing OS RNG leaves a zero key: proofs still work, they are just not secret-keyed.
        let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut key);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            proofs: Mutex::new(HashMap::new()),
            pool: Arc::new(Semaphore::new(workers.max(1))),
            gauges: PoolGauges::default(),
            max_in_flight,
        }
    }

    /// The gauges of the argon2id pool (for `/metrics` and tests).
    pub fn gauges(&self) -> &PoolGauges {
        &self.gauges
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
        // Dropping this future at any await below leaves the counts right: before the job
        // starts, the guard leaves the admission; once it started, the job owns both.
        let admitted = Admitted::enter(&self.gauges.admitted, self.max_in_flight).ok_or(Busy)?;
        let permit = self.pool.clone().acquire_owned().await.map_err(|_| Busy)?;
        let candidates: Vec<_> = record
            .accepted_hashes(now)
            .map(|(h, kind)| (h.clone(), kind))
            .collect();
        let presented = secret.to_owned();
        let running = self.gauges.running.clone();
        let matched = tokio::task::spawn_blocking(move || {
            // Dropped in this order: the job stops counting as running before its worker slot
            // is given to the next one.
            let _job = (Running::start(running), permit, admitted);
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
mod tests;
