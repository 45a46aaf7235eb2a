//! Which objects of one kind exist, by namespace and name, and nothing else of them: the store
//! of the tenant Secrets, whose only reader asks whether one exists (the controller reads the
//! Secret itself from the API). One short string per object instead of a reflector entry (an
//! `ObjectRef` key and an object, each with its own strings: ~620 bytes per Secret measured at
//! 100,000, `hack/bench.sh index`).

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
};

use kube::{Resource, runtime::watcher};
use tokio::sync::watch;

/// The reading side: whether an object exists, and whether the first list is in.
#[derive(Clone)]
pub struct Presence {
    names: Arc<RwLock<Names>>,
    ready: watch::Receiver<bool>,
}

/// The writing side, fed the watch's events (or a test's).
pub struct PresenceWriter {
    names: Arc<RwLock<Names>>,
    ready: watch::Sender<bool>,
}

#[derive(Default)]
struct Names {
    live: HashSet<Box<str>>,
    /// The relist under way: what it has listed so far (it replaces `live` when done).
    relisting: Option<HashSet<Box<str>>>,
}

/// The watch that fills a [`Presence`] stopped before its first list was in.
#[derive(Debug, thiserror::Error)]
#[error("the watch stopped before its first list was complete")]
pub struct WriterDropped;

/// An empty set and its writer.
pub fn presence() -> (Presence, PresenceWriter) {
    let names = Arc::new(RwLock::new(Names::default()));
    let (ready_tx, ready_rx) = watch::channel(false);
    (
        Presence {
            names: names.clone(),
            ready: ready_rx,
        },
        PresenceWriter {
            names,
            ready: ready_tx,
        },
    )
}

fn key(namespace: &str, name: &str) -> Box<str> {
    // Neither a namespace nor a name can contain '/'.
    format!("{namespace}/{name}").into_boxed_str()
}

fn key_of<K: Resource>(obj: &K) -> Option<Box<str>> {
    let meta = obj.meta();
    Some(key(
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref()?,
    ))
}

impl Presence {
    /// Whether the object `namespace/name` exists (as of the last event seen).
    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        let names = self.names.read().unwrap_or_else(|e| e.into_inner());
        names.live.contains(&key(namespace, name))
    }

    /// How many objects exist.
    pub fn len(&self) -> usize {
        let names = self.names.read().unwrap_or_else(|e| e.into_inner());
        names.live.len()
    }

    /// Whether no object exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

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

impl PresenceWriter {
    /// Applies one watch event, as kube's reflector store does: a relist (`Init` ..
    /// `InitDone`) replaces the set when it is complete, so an object deleted while the watch
    /// was down is gone afterwards and none is missing meanwhile.
    pub fn apply_watcher_event<K: Resource>(&mut self, event: &watcher::Event<K>) {
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(obj) => {
                names.live.extend(key_of(obj));
            }
            watcher::Event::Delete(obj) => {
                if let Some(key) = key_of(obj) {
                    names.live.remove(&key);
                }
            }
            watcher::Event::Init => names.relisting = Some(HashSet::new()),
            watcher::Event::InitApply(obj) => {
                let key = key_of(obj);
                names.relisting.get_or_insert_default().extend(key);
            }
            watcher::Event::InitDone => {
                let mut listed = names.relisting.take().unwrap_or_default();
                listed.shrink_to_fit();
                names.live = listed;
                drop(names);
                self.ready.send_replace(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Secret;
    use kube::core::ObjectMeta;

    use super::*;

    fn secret(ns: &str, name: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        }
    }

    #[test]
    fn applies_and_deletes_are_seen_by_namespace_and_name() {
        let (set, mut w) = presence();
        w.apply_watcher_event(&watcher::Event::Apply(secret("a", "s")));
        assert!(set.contains("a", "s"));
        assert!(
            !set.contains("b", "s"),
            "another namespace's Secret of that name"
        );
        assert!(!set.contains("a", "t"));
        w.apply_watcher_event(&watcher::Event::Delete(secret("a", "s")));
        assert!(!set.contains("a", "s"));
    }

    #[test]
    fn a_relist_replaces_the_set_when_complete_and_keeps_it_meanwhile() {
        let (set, mut w) = presence();
        w.apply_watcher_event(&watcher::Event::Apply(secret("a", "gone")));
        w.apply_watcher_event(&watcher::Event::Apply(secret("a", "kept")));
        w.apply_watcher_event(&watcher::Event::<Secret>::Init);
        w.apply_watcher_event(&watcher::Event::InitApply(secret("a", "kept")));
        w.apply_watcher_event(&watcher::Event::InitApply(secret("a", "new")));
        assert!(
            set.contains("a", "gone"),
            "the old set answers until the list is in"
        );
        assert!(!set.contains("a", "new"));
        w.apply_watcher_event(&watcher::Event::<Secret>::InitDone);
        assert!(
            !set.contains("a", "gone"),
            "deleted while the watch was down"
        );
        assert!(set.contains("a", "kept") && set.contains("a", "new"));
        assert_eq!(set.len(), 2);
    }

    #[tokio::test]
    async fn ready_once_the_first_list_is_in_and_an_error_if_the_watch_stops_before() {
        let (set, mut w) = presence();
        let waiting = tokio::spawn({
            let set = set.clone();
            async move { set.wait_until_ready().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        w.apply_watcher_event(&watcher::Event::<Secret>::Init);
        w.apply_watcher_event(&watcher::Event::<Secret>::InitDone);
        assert!(waiting.await.unwrap().is_ok());

        let (never, w) = presence();
        drop(w);
        assert!(never.wait_until_ready().await.is_err());
    }
}
