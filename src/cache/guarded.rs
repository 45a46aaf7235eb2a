//! The watch of a custom resource that fails closed: an object that does not deserialise
//! (a CRD version skew, an object stored under a looser schema) neither breaks the watch nor
//! keeps its last readable version in the store. Its update removes it from the store (a delete
//! of a tombstone carrying its metadata, which the controllers and the record collector see as
//! a change), and it is remembered in [`Unreadable`] until a readable version arrives or it is
//! deleted. So a disable, suspend or delete that the operator cannot read is never missed: the
//! object gets no tokens while unreadable.
//!
//! Order, so that an existing object is always in the store or in the set (the record
//! collector deletes records of apps that are in neither): an object is marked unreadable
//! before the store drops it, and forgotten only after the store has its readable version.

use std::sync::Arc;

use futures::{Stream, StreamExt, future};
use kube::{
    Resource,
    core::{DeserializeGuard, ObjectMeta, error_boundary::InvalidObject},
    runtime::{reflector::store::Writer, watcher},
};

use super::unreadable::{Unreadable, UnreadableObject};
use crate::api::{M2MApp, Organization};

/// A kind whose unreadable objects can be removed from a store by a stand-in object.
pub trait Tombstone: Resource<DynamicType = ()> + Sized {
    /// An object with this metadata and nothing else.
    fn tombstone(metadata: ObjectMeta) -> Self;
}

impl Tombstone for M2MApp {
    fn tombstone(metadata: ObjectMeta) -> Self {
        Self {
            metadata,
            spec: Default::default(),
            status: None,
        }
    }
}

impl Tombstone for Organization {
    fn tombstone(metadata: ObjectMeta) -> Self {
        Self {
            metadata,
            spec: Default::default(),
            status: None,
        }
    }
}

/// What to do to the set once the store has applied an event.
enum After {
    Nothing,
    /// A readable version is stored, or the object is gone.
    Forget {
        namespace: Option<String>,
        name: String,
    },
    /// A full list ended: these are the unreadable objects.
    Replace(Vec<UnreadableObject>),
}

/// The state of one guarded watch between events.
struct Guard {
    kind: &'static str,
    unreadable: Arc<Unreadable>,
    /// The unreadable objects of the list in progress.
    listing: Vec<UnreadableObject>,
}

impl Guard {
    fn unreadable(&self, invalid: &InvalidObject) -> UnreadableObject {
        let meta = &invalid.metadata;
        tracing::warn!(
            kind = self.kind,
            namespace = meta.namespace.as_deref().unwrap_or(""),
            name = meta.name.as_deref().unwrap_or(""),
            error = %invalid.error,
            "an object does not match the operator's types: it is left out of the cache and gets \
             no tokens until a readable version is written"
        );
        UnreadableObject {
            kind: self.kind,
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone(),
        }
    }

    /// The event the store gets (if any), after marking what became unreadable.
    fn translate<K: Tombstone>(
        &mut self,
        event: watcher::Event<DeserializeGuard<K>>,
    ) -> (Option<watcher::Event<K>>, After) {
        let forget = |meta: &ObjectMeta| After::Forget {
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
        };
        match event {
            watcher::Event::Apply(DeserializeGuard(Ok(obj))) => {
                let after = forget(obj.meta());
                (Some(watcher::Event::Apply(obj)), after)
            }
            watcher::Event::Apply(DeserializeGuard(Err(invalid))) => {
                self.unreadable.mark(self.unreadable(&invalid));
                let tombstone = K::tombstone(invalid.metadata);
                (Some(watcher::Event::Delete(tombstone)), After::Nothing)
            }
            watcher::Event::Delete(DeserializeGuard(result)) => {
                let obj = result.unwrap_or_else(|invalid| K::tombstone(invalid.metadata));
                let after = forget(obj.meta());
                (Some(watcher::Event::Delete(obj)), after)
            }
            watcher::Event::Init => {
                self.listing.clear();
                (Some(watcher::Event::Init), After::Nothing)
            }
            watcher::Event::InitApply(DeserializeGuard(Ok(obj))) => {
                (Some(watcher::Event::InitApply(obj)), After::Nothing)
            }
            watcher::Event::InitApply(DeserializeGuard(Err(invalid))) => {
                // The store keeps serving the old list until this one ends: take the object's
                // old version out of it now (a delete goes to the store, not the list's buffer).
                let object = self.unreadable(&invalid);
                self.unreadable.mark(object.clone());
                self.listing.push(object);
                let tombstone = K::tombstone(invalid.metadata);
                (Some(watcher::Event::Delete(tombstone)), After::Nothing)
            }
            watcher::Event::InitDone => (
                Some(watcher::Event::InitDone),
                After::Replace(std::mem::take(&mut self.listing)),
            ),
        }
    }

    fn finish(&self, after: After) {
        match after {
            After::Nothing => {}
            After::Forget { namespace, name } => {
                if self
                    .unreadable
                    .clear(self.kind, namespace.as_deref(), &name)
                {
                    tracing::info!(
                        kind = self.kind,
                        namespace = namespace.as_deref().unwrap_or(""),
                        name,
                        "a formerly unreadable object is readable again or deleted"
                    );
                }
            }
            After::Replace(objects) => self.unreadable.replace_kind(self.kind, objects),
        }
    }
}

/// The events of a guarded watch, applied to `writer`'s store (each object through `strip`
/// first) with the unreadable objects kept in `unreadable`; what comes out is what the store
/// got, as [`kube::runtime::reflector`] would pass it on.
pub fn reflect<K, S>(
    events: S,
    mut writer: Writer<K>,
    unreadable: Arc<Unreadable>,
    strip: fn(&mut K),
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: Tombstone + Clone + Send + Sync + 'static,
    S: Stream<Item = Result<watcher::Event<DeserializeGuard<K>>, watcher::Error>> + Send,
{
    let mut guard = Guard {
        kind: kind_label::<K>(),
        unreadable,
        listing: Vec::new(),
    };
    events.filter_map(move |item| {
        future::ready(match item {
            Err(e) => Some(Err(e)),
            Ok(event) => {
                let (event, after) = guard.translate(event);
                let applied = event.map(|e| {
                    let e = e.modify(strip);
                    writer.apply_watcher_event(&e);
                    e
                });
                guard.finish(after);
                applied.map(Ok)
            }
        })
    })
}

/// The kind's name as a `'static` label (one of [`super::unreadable::KINDS`]).
fn kind_label<K: Resource<DynamicType = ()>>() -> &'static str {
    let kind = K::kind(&());
    super::unreadable::KINDS
        .into_iter()
        .find(|k| *k == kind)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use futures::channel::mpsc;
    use kube::runtime::reflector::{self, ObjectRef, Store};
    use serde_json::json;

    use super::*;
    use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};

    /// An M2MApp as the API server sends it: `audiences` a string is what the operator's types
    /// cannot read.
    fn app(name: &str, version: u32, audiences: serde_json::Value) -> DeserializeGuard<M2MApp> {
        serde_json::from_value(json!({
            "apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
            "metadata": {"name": name, "namespace": "n", "uid": format!("u-{name}"),
                         "resourceVersion": version.to_string(),
                         "annotations": {"example.com/big": "y".repeat(1000)}},
            "spec": {"audiences": audiences}}))
        .expect("a guarded object")
    }

    fn good(version: u32) -> DeserializeGuard<M2MApp> {
        app("x", version, json!(["api"]))
    }

    fn bad(version: u32) -> DeserializeGuard<M2MApp> {
        app("x", version, json!("api"))
    }

    /// The production pipeline over events sent by hand.
    struct Pipeline {
        tx: mpsc::UnboundedSender<Result<watcher::Event<DeserializeGuard<M2MApp>>, watcher::Error>>,
        out: futures::stream::BoxStream<'static, Result<watcher::Event<M2MApp>, watcher::Error>>,
        store: Store<M2MApp>,
        unreadable: Arc<Unreadable>,
    }

    impl Pipeline {
        fn new() -> Self {
            let (tx, rx) = mpsc::unbounded();
            let (store, writer) = reflector::store();
            let unreadable = Arc::new(Unreadable::default());
            let out = reflect(rx, writer, unreadable.clone(), crate::cache::strip::app).boxed();
            Self {
                tx,
                out,
                store,
                unreadable,
            }
        }

        /// Sends `events` and waits for the `outputs` events they give the store.
        fn feed(
            &mut self,
            events: Vec<watcher::Event<DeserializeGuard<M2MApp>>>,
            outputs: usize,
        ) -> Vec<watcher::Event<M2MApp>> {
            for event in events {
                self.tx.unbounded_send(Ok(event)).expect("send");
            }
            let mut seen = Vec::new();
            for _ in 0..outputs {
                // Everything was sent already: what the pipeline gives, it gives at once.
                let next = futures::FutureExt::now_or_never(self.out.next());
                seen.push(
                    next.flatten()
                        .unwrap_or_else(|| panic!("{} of {outputs} events came out", seen.len()))
                        .expect("no error"),
                );
            }
            seen
        }

        fn cached(&self) -> Option<Arc<M2MApp>> {
            self.store.get(&ObjectRef::new("x").within("n"))
        }

        fn unreadable_names(&self) -> Vec<String> {
            self.unreadable.list().into_iter().map(|o| o.name).collect()
        }
    }

    #[test]
    fn an_app_that_becomes_unreadable_leaves_the_store_until_readable_again() {
        let mut p = Pipeline::new();
        p.feed(vec![Init, InitApply(good(1)), InitDone], 3);
        let cached = p.cached().expect("the readable app is cached");
        assert_eq!(cached.spec.audiences, ["api"]);
        assert!(
            cached.metadata.annotations.is_none(),
            "stripped on the way in"
        );
        assert!(p.unreadable_names().is_empty());

        // A version the operator cannot read: no stale copy stays behind.
        let out = p.feed(vec![Apply(bad(2))], 1);
        assert!(matches!(&out[..], [Delete(t)] if t.metadata.uid.as_deref() == Some("u-x")));
        assert!(
            p.cached().is_none(),
            "the last readable version is not kept"
        );
        assert_eq!(p.unreadable.list().len(), 1);
        assert!(p.unreadable.has_uid("u-x"));

        // A readable version brings it back and clears the mark.
        p.feed(vec![Apply(good(3))], 1);
        assert_eq!(
            p.cached().and_then(|a| a.metadata.resource_version.clone()),
            Some("3".into())
        );
        assert!(p.unreadable_names().is_empty());

        // Deleting an unreadable object forgets it.
        p.feed(vec![Apply(bad(4)), Delete(bad(5))], 2);
        assert!(p.cached().is_none());
        assert!(p.unreadable_names().is_empty());
    }

    #[test]
    fn a_relist_keeps_exactly_the_unreadable_objects_it_saw() {
        let mut p = Pipeline::new();
        p.feed(vec![Init, InitApply(good(1)), InitDone], 3);

        // Relisted while unreadable (the watch restarted): left out, still listed, and its old
        // version gone from the store before the list ends.
        p.feed(vec![Init, InitApply(bad(2))], 2);
        assert_eq!(p.unreadable_names(), ["x"], "marked before the list ends");
        assert!(
            p.cached().is_none(),
            "no stale version while the list goes on"
        );
        p.feed(vec![InitDone], 1);
        assert!(p.cached().is_none(), "the relist replaced the old version");
        assert_eq!(p.unreadable_names(), ["x"]);

        // Deleted while the watch was down: the next list no longer has it.
        p.feed(
            vec![Init, InitApply(app("y", 2, json!(["api"]))), InitDone],
            3,
        );
        assert!(p.unreadable_names().is_empty());

        // Readable in a relist: cached, not listed.
        p.feed(vec![Apply(bad(3))], 1);
        assert_eq!(p.unreadable_names(), ["x"]);
        p.feed(vec![Init, InitApply(good(4)), InitDone], 3);
        assert!(p.cached().is_some());
        assert!(p.unreadable_names().is_empty());
    }
}
