//! Which objects of one kind exist, by namespace and name, and nothing else of them: the store
//! of the tenant Secrets, whose only reader asks whether one exists (the controller reads the
//! Secret itself from the API). One short string per object (and a hash of its UID, so that a
//! relist tells an object deleted and created again under its name from the one it knew)
//! instead of a reflector entry (an `ObjectRef` key and an object, each with its own strings:
//! ~620 bytes per Secret measured at 100,000, `hack/bench.sh index`).

use std::{
    cell::Cell,
    hash::{DefaultHasher, Hash, Hasher},
};

use kube::{Resource, runtime::watcher};

use super::keyed::{Keyed, KeyedWriter, WriterDropped, keyed};

/// The reading side: whether an object exists, and whether the first list is in.
#[derive(Clone)]
pub struct Presence {
    names: Keyed<Box<str>, u64>,
}

/// The writing side, fed the watch's events (or a test's).
pub struct PresenceWriter {
    names: KeyedWriter<Box<str>, u64>,
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

/// The key and a hash of the UID (an object without one hashes as the empty UID).
fn entry_of<K: Resource>(obj: &K) -> Option<(Box<str>, u64)> {
    let mut hasher = DefaultHasher::new();
    obj.meta().uid.as_deref().unwrap_or("").hash(&mut hasher);
    Some((key_of(obj)?, hasher.finish()))
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
    /// completed relist removed or found replaced (deleted, or deleted and created again under
    /// the same name, while the watch was down: no Delete event told of them, and the set does
    /// not keep whom they belonged to).
    pub fn apply_watcher_event<K: Resource>(&mut self, event: &watcher::Event<K>) -> usize {
        let names = &mut self.names;
        match event {
            watcher::Event::Apply(obj) => entry_of(obj)
                .into_iter()
                .for_each(|(k, uid)| names.apply(k, uid)),
            watcher::Event::Delete(obj) => key_of(obj).into_iter().for_each(|k| names.delete(&k)),
            watcher::Event::Init => names.init(),
            watcher::Event::InitApply(obj) => {
                entry_of(obj)
                    .into_iter()
                    .for_each(|(k, uid)| names.init_apply(k, uid));
            }
            watcher::Event::InitDone => {
                // `same` is asked only of the keys the old set held too.
                let replaced = Cell::new(0);
                let relisted = names.init_done(|old, new| {
                    replaced.set(replaced.get() + usize::from(old != new));
                    old == new
                });
                return relisted.removed.len() + replaced.get();
            }
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
        with_uid(ns, name, "uid-1")
    }

    fn with_uid(ns: &str, name: &str, uid: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                uid: Some(uid.into()),
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

    #[test]
    fn a_relist_counts_an_object_deleted_and_created_again_under_its_name() {
        // Deleted and planted again (another UID, perhaps no owner) while the watch was down:
        // no Delete event told of it, and the new one's event may name no app to wake.
        let (set, mut w) = presence();
        w.apply_watcher_event(&watcher::Event::Apply(with_uid("a", "s", "uid-1")));
        w.apply_watcher_event(&watcher::Event::Apply(with_uid("a", "t", "uid-2")));
        w.apply_watcher_event(&watcher::Event::<Secret>::Init);
        w.apply_watcher_event(&watcher::Event::InitApply(with_uid("a", "s", "uid-3")));
        w.apply_watcher_event(&watcher::Event::InitApply(with_uid("a", "t", "uid-2")));
        assert_eq!(
            w.apply_watcher_event(&watcher::Event::<Secret>::InitDone),
            1,
            "the replaced one counts, the unchanged one does not"
        );
        assert!(set.contains("a", "s") && set.contains("a", "t"));
    }
}
