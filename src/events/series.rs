//! Which Events continue a series: the same Event about the same object within
//! [`SERIES_WINDOW`] of its last occurrence patches the Event already published (its
//! `series.count` and `lastObservedTime`) instead of creating another one. Pure bookkeeping; the
//! API calls are in [`super::Publisher`].
//!
//! Unlike kube-runtime's `events::Recorder` (which this replaces), the key includes the Event's
//! note, so a different message is a new Event rather than a higher count on an old message;
//! the open series are bounded ([`MAX_OPEN`]), and the table is shrunk once they close: kube's
//! kept one entry per Event published in the last 6 minutes and never gave the table back
//! (23.6 MiB in one allocation after a leader issued 10,000 apps, heaptrack).

use std::{collections::HashMap, time::Duration};

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// How long after its last occurrence an Event can still be continued (kube's and client-go's
/// choice too).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// At most this many open series are remembered; beyond, an Event is created without one.
pub const MAX_OPEN: usize = 4096;

/// A digest of what makes two Events the same: the object, type, reason, action and note.
pub type Key = [u8; 32];

/// What to do with the next Event of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Create a new Event.
    Create,
    /// Patch the Event `name` in `namespace` to this count.
    Continue {
        namespace: String,
        name: String,
        count: i32,
    },
}

#[derive(Debug)]
struct Open {
    namespace: String,
    name: String,
    count: i32,
    last: Timestamp,
}

/// The open series of one publisher.
#[derive(Debug, Default)]
pub struct Series {
    open: HashMap<Key, Open>,
}

impl Series {
    /// What the next Event of `key`, at `now`, is.
    pub fn next(&mut self, key: &Key, now: Timestamp) -> Next {
        self.close_expired(now);
        match self.open.get(key) {
            Some(open) => Next::Continue {
                namespace: open.namespace.clone(),
                name: open.name.clone(),
                count: open.count.saturating_add(1),
            },
            None => Next::Create,
        }
    }

    /// `name` in `namespace` was created for `key` at `now`: later ones continue it.
    pub fn created(&mut self, key: Key, namespace: &str, name: &str, now: Timestamp) {
        if self.open.len() >= MAX_OPEN && !self.open.contains_key(&key) {
            return;
        }
        self.open.insert(
            key,
            Open {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                count: 1,
                last: now,
            },
        );
    }

    /// The series of `key` was patched to `count` at `now`.
    pub fn continued(&mut self, key: &Key, count: i32, now: Timestamp) {
        if let Some(open) = self.open.get_mut(key) {
            open.count = count;
            open.last = now;
        }
    }

    /// The Event of `key` is gone (its patch found nothing): the next one is created.
    pub fn forget(&mut self, key: &Key) {
        self.open.remove(key);
    }

    /// How many series are open.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no series is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// How many series the table has room for without growing (what it holds in memory).
    pub fn capacity(&self) -> usize {
        self.open.capacity()
    }

    fn close_expired(&mut self, now: Timestamp) {
        let window = SignedDuration::try_from(SERIES_WINDOW).unwrap_or(SignedDuration::MAX);
        self.open
            .retain(|_, open| open.last.saturating_add(window).is_ok_and(|end| end > now));
        // Give the table back once most of it is empty (a burst of Events is over).
        if self.open.capacity() > 4 * self.open.len().max(16) {
            self.open.shrink_to(2 * self.open.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn key(n: u32) -> Key {
        let mut k = [0; 32];
        k[..4].copy_from_slice(&n.to_be_bytes());
        k
    }

    #[test]
    fn the_same_event_within_the_window_continues_the_first() {
        let mut s = Series::default();
        assert_eq!(s.next(&key(1), at(0)), Next::Create);
        s.created(key(1), "tenant", "agent.17", at(0));
        let second = s.next(&key(1), at(60));
        assert_eq!(
            second,
            Next::Continue {
                namespace: "tenant".into(),
                name: "agent.17".into(),
                count: 2
            }
        );
        s.continued(&key(1), 2, at(60));
        // The window runs from the last occurrence, not the first.
        let third = s.next(&key(1), at(60 + 359));
        assert!(
            matches!(third, Next::Continue { count: 3, .. }),
            "{third:?}"
        );
        assert_eq!(s.next(&key(2), at(61)), Next::Create, "another Event");
    }

    #[test]
    fn after_the_window_the_event_is_new() {
        let mut s = Series::default();
        s.created(key(1), "tenant", "agent.17", at(0));
        assert_eq!(s.next(&key(1), at(360)), Next::Create);
        assert!(s.is_empty(), "the closed series is forgotten");
    }

    #[test]
    fn a_series_whose_event_is_gone_starts_again() {
        let mut s = Series::default();
        s.created(key(1), "tenant", "agent.17", at(0));
        s.forget(&key(1));
        assert_eq!(s.next(&key(1), at(1)), Next::Create);
    }

    #[test]
    fn open_series_are_bounded_and_their_memory_returned_when_they_close() {
        let mut s = Series::default();
        for n in 0..(MAX_OPEN as u32 + 100) {
            assert_eq!(s.next(&key(n), at(0)), Next::Create);
            s.created(key(n), "tenant", &format!("agent.{n}"), at(0));
        }
        assert_eq!(s.len(), MAX_OPEN, "no more than MAX_OPEN remembered");
        assert_eq!(
            s.next(&key(MAX_OPEN as u32 + 50), at(1)),
            Next::Create,
            "past the bound an Event is created without a series"
        );
        let full = s.capacity();
        assert!(full >= MAX_OPEN);
        assert_eq!(s.next(&key(1_000_000), at(400)), Next::Create);
        s.created(key(1_000_000), "tenant", "late", at(400));
        assert!(matches!(
            s.next(&key(1_000_000), at(401)),
            Next::Continue { .. }
        ));
        assert_eq!(s.len(), 1, "only the one still open");
        assert!(
            s.capacity() < full / 16,
            "the table is given back: capacity {} of {full}",
            s.capacity()
        );
    }
}
