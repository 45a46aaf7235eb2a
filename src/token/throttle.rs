//! Brute-force protection: after `max_failures` failed authentications for one key (a
//! `client_id` or a source address) within `window`, the key's slow path (argon2 work) is
//! refused until the window ends. Requests whose secret is already verified (the in-memory fast
//! path) are never throttled, so an attacker flooding one `client_id` does not lock out the real
//! client. Pure: the caller passes the time.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// Failure counters per key.
#[derive(Debug)]
pub struct Throttle {
    max_failures: u32,
    window: Duration,
    max_keys: usize,
    entries: HashMap<String, Window>,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

impl Throttle {
    pub fn new(max_failures: u32, window: Duration, max_keys: usize) -> Self {
        Self {
            max_failures,
            window,
            max_keys,
            entries: HashMap::new(),
        }
    }

    /// How long `key` must wait, if it is throttled at `now`.
    pub fn blocked(&self, key: &str, now: Instant) -> Option<Duration> {
        let w = self.entries.get(key)?;
        let ends = w.started + self.window;
        (w.failures >= self.max_failures && now < ends).then(|| ends - now)
    }

    /// Counts a failed authentication for `key`.
    pub fn fail(&mut self, key: &str, now: Instant) {
        if self.entries.len() >= self.max_keys && !self.entries.contains_key(key) {
            let window = self.window;
            self.entries
                .retain(|_, w| now.duration_since(w.started) < window);
            if self.entries.len() >= self.max_keys {
                // Still full of live windows: forget the oldest rather than grow without bound.
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        let w = self.entries.entry(key.to_owned()).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(w.started) >= self.window {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_after_max_failures_until_the_window_ends() {
        let t0 = Instant::now();
        let mut t = Throttle::new(3, Duration::from_secs(60), 100);
        for _ in 0..2 {
            t.fail("a", t0);
        }
        assert_eq!(t.blocked("a", t0), None);
        t.fail("a", t0);
        assert_eq!(
            t.blocked("a", t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(50))
        );
        assert_eq!(t.blocked("b", t0), None, "other keys are unaffected");
        assert_eq!(t.blocked("a", t0 + Duration::from_secs(60)), None);
        t.fail("a", t0 + Duration::from_secs(61));
        assert_eq!(
            t.blocked("a", t0 + Duration::from_secs(61)),
            None,
            "a new window"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut t = Throttle::new(3, Duration::from_secs(60), 10);
        for i in 0..1000 {
            t.fail(&format!("k{i}"), t0);
        }
        assert!(t.len() <= 10);
    }
}
