//! Secret writes the API server refused, per app: while one is in force, the reconcile writes no
//! Secret and hashes no new secret (each attempt costs an argon2id hash and a client-record
//! write), so a Secret that cannot be written (an invalid label in `secretTemplate`, a full
//! `count/secrets` quota, an admission policy, an immutable Secret) costs one attempt per
//! backoff step instead of a loop on the controller's own writes. A change of the app's spec
//! (generation) or of its Secret ends the wait at once.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use tokio::time::Instant;

use crate::controller::backoff;

/// The last refused Secret write of one app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Refused attempts in a row.
    pub attempts: u32,
    /// What the API server said (no secret in it: see [`crate::controller::Error::SecretRefused`]).
    pub message: String,
    /// When the next attempt may be made.
    pub retry_at: Instant,
    /// The app's generation and its Secret's resourceVersion at the failure.
    generation: Option<i64>,
    secret_version: Option<String>,
}

impl Failure {
    /// Whether the next attempt must still wait: nothing the failure depended on changed.
    pub fn holds(
        &self,
        generation: Option<i64>,
        secret_version: Option<&str>,
        now: Instant,
    ) -> bool {
        now < self.retry_at
            && self.generation == generation
            && self.secret_version.as_deref() == secret_version
    }

    /// How long until the next attempt.
    pub fn retry_in(&self, now: Instant) -> Duration {
        self.retry_at.saturating_duration_since(now)
    }
}

/// The failures by app UID.
#[derive(Debug, Default)]
pub struct WriteFailures(Mutex<HashMap<String, Failure>>);

impl WriteFailures {
    pub fn get(&self, uid: &str) -> Option<Failure> {
        self.0.lock().ok()?.get(uid).cloned()
    }

    /// Records a refused write; returns the failure with its new attempt count and retry time.
    pub fn failed(
        &self,
        uid: &str,
        generation: Option<i64>,
        secret_version: Option<&str>,
        message: String,
        now: Instant,
    ) -> Failure {
        let attempts = self.get(uid).map_or(1, |f| f.attempts.saturating_add(1));
        let failure = Failure {
            attempts,
            message,
            retry_at: now + backoff::delay(attempts),
            generation,
            secret_version: secret_version.map(str::to_owned),
        };
        if let Ok(mut map) = self.0.lock() {
            map.insert(uid.to_owned(), failure.clone());
        }
        failure
    }

    /// The app's Secret was written (or needs no write): the streak is over.
    pub fn cleared(&self, uid: &str) -> bool {
        self.0.lock().is_ok_and(|mut map| map.remove(uid).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failure_holds_until_its_time_or_a_change() {
        let failures = WriteFailures::default();
        let t0 = Instant::now();
        let f = failures.failed("u", Some(1), None, "quota".into(), t0);
        assert_eq!((f.attempts, f.retry_in(t0)), (1, backoff::FIRST));
        assert!(f.holds(Some(1), None, t0));
        assert!(!f.holds(Some(2), None, t0), "a spec change retries at once");
        assert!(!f.holds(Some(1), Some("9"), t0), "so does a Secret change");
        assert!(!f.holds(Some(1), None, t0 + backoff::FIRST));
        let f = failures.failed("u", Some(1), None, "quota".into(), t0);
        assert_eq!(f.attempts, 2, "the streak goes on");
        assert_eq!(f.retry_in(t0), backoff::delay(2));
        assert!(failures.cleared("u"));
        assert_eq!(failures.get("u"), None);
        assert!(!failures.cleared("u"));
    }
}
