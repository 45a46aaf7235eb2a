//! Brute-force protection: after `max_failures` failed authentications for one key (a
//! `client_id` or a source address) within `window`, the key's slow path (argon2 work) is
//! refused until the window ends. Requests whose secret is already verified (the in-memory fast
//! path) are never throttled, so an attacker flooding one `client_id` does not lock out the real
//! client. Pure: the caller passes the time.
//!
//! The caller registers each attempt before the argon2 work, in a drop guard that counts it as a
//! failure unless the secret verified, so an attempt whose request is dropped mid-verification
//! (a client that hangs up, the request timeout) still counts.
//!
//! Memory is bounded by `max_keys`. Windows have one fixed length and start when they are
//! created, so an insertion-ordered queue is also their expiry order: expired windows are dropped
//! from its front, and when the map is full the oldest window goes; both O(1) amortised, with no
//! scan of the map under the caller's lock.

use std::{
    collections::{HashMap, VecDeque, hash_map::Entry},
    hash::Hash,
    time::{Duration, Instant},
};

/// Failure counters per key.
#[derive(Debug)]
pub struct Throttle<K> {
    max_failures: u32,
    window: Duration,
    max_keys: usize,
    entries: HashMap<K, Window>,
    /// `(key, started)` in the order the windows started; an item whose window has since been
    /// replaced (another `started`) or removed is skipped when it reaches the front.
    order: VecDeque<(K, Instant)>,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    pub fn new(max_failures: u32, window: Duration, max_keys: usize) -> Self {
        Self {
            max_failures,
            window,
            max_keys: max_keys.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// How long `key` must wait, if it is throttled at `now`.
    pub fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let w = self.entries.get(key)?;
        let ends = w.started + self.window;
        (w.failures >= self.max_failures && now < ends).then(|| ends - now)
    }

    /// Counts a failed authentication for `key`.
    pub fn fail(&mut self, key: &K, now: Instant) {
        let w = self.window_mut(key, now);
        w.failures = w.failures.saturating_add(1);
    }

    /// The live window of `key`, a new one if it had none or its window ended.
    fn window_mut(&mut self, key: &K, now: Instant) -> &mut Window {
        self.expire(now);
        let window = self.window;
        let fresh = Window {
            started: now,
            failures: 0,
        };
        if !self.entries.contains_key(key) && self.entries.len() >= self.max_keys {
            self.evict_oldest();
        }
        match self.entries.entry(key.clone()) {
            Entry::Vacant(v) => {
                self.order.push_back((key.clone(), now));
                v.insert(fresh)
            }
            Entry::Occupied(o) => {
                let w = o.into_mut();
                if now.duration_since(w.started) >= window {
                    *w = fresh;
                    self.order.push_back((key.clone(), now));
                }
                w
            }
        }
    }

    /// Drops windows that ended before `now` (and queue items of replaced windows).
    fn expire(&mut self, now: Instant) {
        while let Some((key, started)) = self.order.front() {
            if now.duration_since(*started) < self.window {
                break;
            }
            if let Some(w) = self.entries.get(key)
                && w.started == *started
            {
                self.entries.remove(key);
            }
            self.order.pop_front();
        }
    }

    /// Forgets the window that started first, to make room.
    fn evict_oldest(&mut self) {
        while let Some((key, started)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|w| w.started == started) {
                self.entries.remove(&key);
                return;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Items in the expiry queue (bounded by the live windows plus replaced ones not yet
    /// dropped); for tests of the bound.
    pub fn queued(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests;
