//! Which objects of one kind exist, by namespace and name, and nothing else of them: the store
//! of the tenant Secrets, whose only reader asks whether one exists (the controller reads the
//! Secret itself from the API). One short string per object instead of a reflector entry (an
//! `ObjectRef` key and an object, each with its own strings: ~620 bytes per Secret measured at
//! 100,000, `hack/bench.sh index`).

use kube::{Resource, runtime::watcher};

use super::keyed::{Keyed, KeyedWriter, WriterDropped, keyed};

/// The reading side: whether an object exists, and whether the first list is in.
#[derive(Clone)]
pub struct Presence {
    names: Keyed<Box<str>, ()>,
}

/// The writing side, fed the watch's events (or a test's).
pub struct PresenceWriter {
    names: KeyedWriter<Box<str>, ()>,
}

/// An empty set and its writer.
pub fn presence() -> (Presence, PresenceWriter) {
    let (names, writer) = keyed();
    (Presence { names }, PresenceWriter { names: writer })
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
        self.names.contains_key(&*key(namespace, name))
    }

    /// How many objects exist.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no object exists.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Waits until the first list is complete.
    pub async fn wait_until_ready(&self) -> Result<(), WriterDropped> {
        self.names.wait_until_ready().await
    }
}

impl PresenceWriter {
    /// Applies one watch event, as kube's reflector store does: a relist (`Init` ..
    /// `InitDone`) replaces the set when it is complete, so an object deleted while the watch
    /// was down is gone afterwards and none is missing meanwhile. Returns how many objects a
    /// completed relist removed (deleted while the watch was down: no Delete event told of
    /// them, and the set does not keep whom they belonged to).
    pub fn apply_watcher_event<K: Resource>(&mut self, event: &watcher::Event<K>) -> usize {
        let names = &mut self.names;
        match event {
            watcher::Event::Apply(obj) => key_of(obj).into_iter().for_each(|k| names.apply(k, ())),
            watcher::Event::Delete(obj) => key_of(obj).into_iter().for_each(|k| names.delete(&k)),
            watcher::Event::Init => names.init(),
            watcher::Event::InitApply(obj) => {
                key_of(obj)
                    .into_iter()
                    .for_each(|k| names.init_apply(k, ()));
            }
            watcher::Event::InitDone => return names.init_done(|(), ()| true).removed.len(),
        }
        0
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
        assert_eq!(
            w.apply_watcher_event(&watcher::Event::<Secret>::InitDone),
            1,
            "one removed (the new one is not counted)"
        );
        assert!(
            !set.contains("a", "gone"),
            "deleted while the watch was down"
        );
        assert!(set.contains("a", "kept") && set.contains("a", "new"));
        assert_eq!(set.len(), 2);
        w.apply_watcher_event(&watcher::Event::<Secret>::Init);
        w.apply_watcher_event(&watcher::Event::InitApply(secret("a", "kept")));
        w.apply_watcher_event(&watcher::Event::InitApply(secret("a", "new")));
        assert_eq!(
            w.apply_watcher_event(&watcher::Event::<Secret>::InitDone),
            0,
            "a relist that lists all of them removed none"
        );
    }
}
