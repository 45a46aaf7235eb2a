//! A map of one kind's objects by a string key, fed by a watch with the semantics of kube's
//! reflector store (a relist replaces the map when it is complete; the old map answers
//! meanwhile), without kube's per-object costs: an `ObjectRef` key with four strings of its own
//! and an `Arc` of an object with a full `ObjectMeta` (~360 bytes inline). The tenant Secrets'
//! [`super::Presence`] and the client [`super::records::Records`] are two of these.

use std::{
    borrow::Borrow,
    collections::HashMap,
    hash::Hash,
    sync::{Arc, RwLock},
};

use tokio::sync::watch;

/// The reading side: lookups, and whether the first list is in.
pub struct Keyed<K, V> {
    live: Arc<RwLock<HashMap<K, V>>>,
    ready: watch::Receiver<bool>,
}

// Not derived: a derive would require `K: Clone, V: Clone`.
impl<K, V> Clone for Keyed<K, V> {
    fn clone(&self) -> Self {
        Self {
            live: self.live.clone(),
            ready: self.ready.clone(),
        }
    }
}

/// The writing side, fed a watch's events (or a test's).
pub struct KeyedWriter<K, V> {
    live: Arc<RwLock<HashMap<K, V>>>,
    /// The relist under way: what it has listed so far (it replaces `live` when done; kept
    /// outside the readers' lock, as kube's store keeps its buffer).
    relisting: Option<HashMap<K, V>>,
    ready: watch::Sender<bool>,
}

/// The watch that fills a [`Keyed`] map stopped before its first list was in.
#[derive(Debug, thiserror::Error)]
#[error("the watch stopped before its first list was complete")]
pub struct WriterDropped;

/// An empty map and its writer.
pub fn keyed<K, V>() -> (Keyed<K, V>, KeyedWriter<K, V>) {
    let live = Arc::new(RwLock::new(HashMap::new()));
    let (ready_tx, ready_rx) = watch::channel(false);
    (
        Keyed {
            live: live.clone(),
            ready: ready_rx,
        },
        KeyedWriter {
            live,
            relisting: None,
            ready: ready_tx,
        },
    )
}

impl<K: Eq + Hash, V: Clone> Keyed<K, V> {
    /// The value under `key` (as of the last event seen).
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.read(|live| live.get(key).cloned())
    }

    /// Whether `key` is in the map.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.read(|live| live.contains_key(key))
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> Vec<V> {
        self.read(|live| live.values().cloned().collect())
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.read(HashMap::len)
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read<T>(&self, f: impl FnOnce(&HashMap<K, V>) -> T) -> T {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        f(&live)
    }
}

impl<K, V> Keyed<K, V> {
    /// Waits until the first list is complete.
    pub async fn wait_until_ready(&self) -> Result<(), WriterDropped> {
        let mut ready = self.ready.clone();
        ready
            .wait_for(|r| *r)
            .await
            .map(|_| ())
            .map_err(|_| WriterDropped)
    }
}

impl<K: Eq + Hash, V> KeyedWriter<K, V> {
    /// An object was created or changed (outside a relist).
    pub fn apply(&mut self, key: K, value: V) {
        self.write().insert(key, value);
    }

    /// An object was deleted (outside a relist).
    pub fn delete<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.write().remove(key);
    }

    /// A relist starts: what follows, up to [`Self::init_done`], is the whole of it (a relist
    /// that starts again drops what the last one listed).
    pub fn init(&mut self) {
        self.relisting = Some(HashMap::new());
    }

    /// One object of the relist (the readers still see the map from before it).
    pub fn init_apply(&mut self, key: K, value: V) {
        self.relisting
            .get_or_insert_with(HashMap::new)
            .insert(key, value);
    }

    fn write(&mut self) -> std::sync::RwLockWriteGuard<'_, HashMap<K, V>> {
        self.live.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a completed relist changed (see [`KeyedWriter::init_done`]).
#[derive(Debug, PartialEq)]
pub struct Relisted<V> {
    /// The values that are new or not the same as before (as the map now holds them).
    pub changed: Vec<V>,
    /// The values of the keys the relist no longer lists (as they were): deleted while the
    /// watch was down.
    pub removed: Vec<V>,
}

impl<K: Eq + Hash, V: Clone> KeyedWriter<K, V> {
    /// The relist is complete: it replaces the map (an object deleted while the watch was down
    /// is gone, and none was missing meanwhile), and the map is ready. Returns what the relist
    /// changed, for the change bus (what a reader woken by it then finds in the map): the values
    /// that are new or not `same` as before, and the ones it removed.
    pub fn init_done(&mut self, same: impl Fn(&V, &V) -> bool) -> Relisted<V> {
        let mut listed = self.relisting.take().unwrap_or_default();
        listed.shrink_to_fit();
        let changed: Vec<V> = {
            let live = self.live.read().unwrap_or_else(|e| e.into_inner());
            listed
                .iter()
                .filter(|(key, value)| !live.get(*key).is_some_and(|old| same(old, value)))
                .map(|(_, value)| value.clone())
                .collect()
        };
        let old = std::mem::replace(&mut *self.write(), listed);
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        let removed = old
            .into_iter()
            .filter(|(key, _)| !live.contains_key(key))
            .map(|(_, value)| value)
            .collect();
        drop(live);
        self.ready.send_replace(true);
        Relisted { changed, removed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_and_deletes_outside_a_relist_change_the_map_at_once() {
        let (map, mut w) = keyed::<Box<str>, u32>();
        w.apply("a".into(), 1);
        w.apply("a".into(), 2);
        assert_eq!(map.get("a"), Some(2), "the newer value");
        assert!(map.contains_key("a") && !map.contains_key("b"));
        w.delete("a");
        assert_eq!(map.get("a"), None);
        assert!(map.is_empty());
    }

    #[test]
    fn a_relist_replaces_the_map_when_complete_and_the_old_one_answers_meanwhile() {
        let (map, mut w) = keyed::<Box<str>, u32>();
        w.apply("gone".into(), 1);
        w.apply("kept".into(), 1);
        w.apply("same".into(), 5);
        w.init();
        w.init_apply("kept".into(), 2);
        w.init_apply("same".into(), 5);
        w.init_apply("new".into(), 1);
        assert_eq!(
            map.get("gone"),
            Some(1),
            "the old map answers until the list is in"
        );
        assert_eq!(map.get("kept"), Some(1));
        assert_eq!(map.get("new"), None);
        let Relisted {
            mut changed,
            removed,
        } = w.init_done(|a, b| a == b);
        changed.sort_unstable();
        assert_eq!(changed, [1, 2], "new and changed, not the same");
        assert_eq!(removed, [1], "the removed one as it was");
        assert_eq!(map.get("gone"), None, "deleted while the watch was down");
        assert_eq!(map.get("kept"), Some(2));
        assert_eq!(map.get("new"), Some(1));
        let mut values = map.values();
        values.sort_unstable();
        assert_eq!(values, [1, 2, 5]);
    }

    #[tokio::test]
    async fn ready_once_the_first_list_is_in_and_an_error_if_the_watch_stops_before() {
        let (map, mut w) = keyed::<Box<str>, ()>();
        let waiting = tokio::spawn({
            let map = map.clone();
            async move { map.wait_until_ready().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        w.init();
        assert_eq!(
            w.init_done(|(), ()| true),
            Relisted {
                changed: vec![],
                removed: vec![]
            }
        );
        assert!(waiting.await.unwrap().is_ok());

        let (never, w) = keyed::<Box<str>, ()>();
        drop(w);
        assert!(never.wait_until_ready().await.is_err());
    }

    #[test]
    fn a_relist_that_starts_again_forgets_what_the_failed_one_listed() {
        let (map, mut w) = keyed::<Box<str>, u32>();
        w.apply("a".into(), 1);
        w.init();
        w.init_apply("b".into(), 1);
        // The list failed midway; the watcher lists again from the start, and "b" was
        // deleted in between.
        w.init();
        w.init_apply("a".into(), 1);
        let relisted = w.init_done(|x, y| x == y);
        assert_eq!(map.get("b"), None, "only what the completed relist listed");
        assert_eq!(map.get("a"), Some(1));
        assert_eq!(
            relisted,
            Relisted {
                changed: vec![],
                removed: vec![]
            }
        );
    }
}
