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
    maps: Arc<RwLock<Maps<K, V>>>,
    ready: watch::Receiver<bool>,
}

// Not derived: a derive would require `K: Clone, V: Clone`.
impl<K, V> Clone for Keyed<K, V> {
    fn clone(&self) -> Self {
        Self {
            maps: self.maps.clone(),
            ready: self.ready.clone(),
        }
    }
}

/// The writing side, fed a watch's events (or a test's).
pub struct KeyedWriter<K, V> {
    maps: Arc<RwLock<Maps<K, V>>>,
    ready: watch::Sender<bool>,
}

struct Maps<K, V> {
    live: HashMap<K, V>,
    /// The relist under way: what it has listed so far (it replaces `live` when done).
    relisting: Option<HashMap<K, V>>,
}

/// The watch that fills a [`Keyed`] map stopped before its first list was in.
#[derive(Debug, thiserror::Error)]
#[error("the watch stopped before its first list was complete")]
pub struct WriterDropped;

/// An empty map and its writer.
pub fn keyed<K, V>() -> (Keyed<K, V>, KeyedWriter<K, V>) {
    let maps = Arc::new(RwLock::new(Maps {
        live: HashMap::new(),
        relisting: None,
    }));
    let (ready_tx, ready_rx) = watch::channel(false);
    (
        Keyed {
            maps: maps.clone(),
            ready: ready_rx,
        },
        KeyedWriter {
            maps,
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
        let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
        f(&maps.live)
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
        self.write(|maps| {
            maps.live.insert(key, value);
        });
    }

    /// An object was deleted (outside a relist).
    pub fn delete<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.write(|maps| {
            maps.live.remove(key);
        });
    }

    /// A relist starts: what follows, up to [`Self::init_done`], is the whole of it.
    pub fn init(&mut self) {
        self.write(|maps| maps.relisting = Some(HashMap::new()));
    }

    /// One object of the relist.
    pub fn init_apply(&mut self, key: K, value: V) {
        self.write(|maps| {
            maps.relisting
                .get_or_insert_with(HashMap::new)
                .insert(key, value);
        });
    }

    /// The relist is complete: it replaces the map (an object deleted while the watch was down
    /// is gone, and none was missing meanwhile), and the map is ready.
    pub fn init_done(&mut self) {
        self.write(|maps| {
            let mut listed = maps.relisting.take().unwrap_or_default();
            listed.shrink_to_fit();
            maps.live = listed;
        });
        self.ready.send_replace(true);
    }

    fn write(&mut self, f: impl FnOnce(&mut Maps<K, V>)) {
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        f(&mut maps);
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
        w.init();
        w.init_apply("kept".into(), 2);
        w.init_apply("new".into(), 1);
        assert_eq!(
            map.get("gone"),
            Some(1),
            "the old map answers until the list is in"
        );
        assert_eq!(map.get("kept"), Some(1));
        assert_eq!(map.get("new"), None);
        w.init_done();
        assert_eq!(map.get("gone"), None, "deleted while the watch was down");
        assert_eq!(map.get("kept"), Some(2));
        assert_eq!(map.get("new"), Some(1));
        let mut values = map.values();
        values.sort_unstable();
        assert_eq!(values, [1, 2]);
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
        w.init_done();
        assert!(waiting.await.unwrap().is_ok());

        let (never, w) = keyed::<Box<str>, ()>();
        drop(w);
        assert!(never.wait_until_ready().await.is_err());
    }
}
