//! How long a failed reconcile waits before the next try: exponential per object, capped, reset
//! by a success. Conflicts with another writer are retried at once instead (they are races,
//! not failures).

use std::{collections::HashMap, sync::Mutex, time::Duration};

/// The wait after the first failure.
pub const FIRST: Duration = Duration::from_secs(5);
/// The longest wait.
pub const MAX: Duration = Duration::from_secs(300);

/// The wait after `failures` failures in a row (at least one).
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST.saturating_mul(1 << doublings).min(MAX)
}

/// Failures in a row, per object.
#[derive(Debug, Default)]
pub struct Backoffs(Mutex<HashMap<String, u32>>);

impl Backoffs {
    /// Counts a failure of `key`; returns how long to wait.
    pub fn failed(&self, key: &str) -> Duration {
        let Ok(mut map) = self.0.lock() else {
            return MAX;
        };
        let n = map.entry(key.to_owned()).or_default();
        *n = n.saturating_add(1);
        delay(*n)
    }

    /// `key` reconciled fine: its next failure waits [`FIRST`] again.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets_on_success() {
        assert_eq!(delay(1), Duration::from_secs(5));
        assert_eq!(delay(2), Duration::from_secs(10));
        assert_eq!(delay(4), Duration::from_secs(40));
        assert_eq!(delay(7), MAX);
        assert_eq!(delay(u32::MAX), MAX);
        let b = Backoffs::default();
        assert_eq!(b.failed("a"), Duration::from_secs(5));
        assert_eq!(b.failed("a"), Duration::from_secs(10));
        assert_eq!(b.failed("b"), Duration::from_secs(5), "per object");
        b.succeeded("a");
        assert_eq!(b.failed("a"), Duration::from_secs(5));
    }
}
