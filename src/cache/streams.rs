//! The watch tasks: each reflects one kind into its store and publishes every touched object
//! on the change bus.

use std::{fmt::Debug, sync::Arc};

use futures::{Stream, StreamExt, TryStreamExt, future};
use kube::{
    Api, Resource,
    core::DeserializeGuard,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher::{self, watcher},
    },
};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{
    Change, OrgCodes, Tombstone, Unreadable, guarded,
    presence::{self, Presence},
    records::Records,
};

/// Runs a reflecting watch stream, publishing each touched object as a [`Change`]. A change
/// carries the store's own copy of the object when it is the version just stored, so the
/// change buffer holds no second copy of the cache (a store that keeps less of each object,
/// without its resourceVersion, never matches: the object itself is published).
pub(super) fn spawn_stream<K, S>(
    stream: S,
    store: Store<K>,
    changes: broadcast::Sender<Change>,
    wrap: fn(Arc<K>) -> Change,
    shutdown: CancellationToken,
) where
    K: Resource + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let stored = move |obj: &K| {
        store
            .get(&reflector::ObjectRef::from_obj(obj))
            .filter(|s| s.meta().resource_version == obj.meta().resource_version)
    };
    publish(stream, stored, changes, wrap, shutdown);
}

/// Publishes each object `stream` touches, as `stored(object)` when that is `Some` (the
/// store's copy), else as itself.
fn publish<K, S>(
    stream: S,
    stored: impl Fn(&K) -> Option<Arc<K>> + Send + 'static,
    changes: broadcast::Sender<Change>,
    wrap: fn(Arc<K>) -> Change,
    shutdown: CancellationToken,
) where
    K: Resource + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let kind = std::any::type_name::<K>();
    let run = stream.touched_objects().for_each(move |result| {
        match result {
            Ok(obj) => {
                let stored = stored(&obj);
                // No subscriber (not the leader) is fine.
                let _ = changes.send(wrap(stored.unwrap_or_else(|| Arc::new(obj))));
            }
            Err(e) => tracing::warn!(kind, error = %e, "watch error; retrying with backoff"),
        }
        future::ready(())
    });
    tokio::spawn(async move {
        tokio::select! {
            () = run => {},
            () = shutdown.cancelled() => {},
        }
    });
}

/// How a guarded watch is set up.
pub(super) struct Guarded<K> {
    pub(super) config: watcher::Config,
    pub(super) strip: fn(&mut K),
    pub(super) unreadable: Arc<Unreadable>,
    /// Told of every event once the store has it.
    pub(super) index: Option<Arc<OrgCodes>>,
}

/// A watch of a custom resource in which an object that does not deserialise is removed from
/// the store and listed as unreadable ([`guarded`]) instead of failing the whole watch.
pub(super) fn spawn_guarded<K>(
    api: Api<DeserializeGuard<K>>,
    setup: Guarded<K>,
    changes: broadcast::Sender<Change>,
    wrap: fn(Arc<K>) -> Change,
    shutdown: CancellationToken,
) -> Store<K>
where
    K: Tombstone + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let index = setup.index;
    let events = guarded::reflect(
        watcher(api, setup.config).backoff(super::backoff::watch_backoff()),
        writer,
        setup.unreadable,
        setup.strip,
    )
    // Every event (a relist's removals land at its end, with no object of their own).
    .inspect(move |_| {
        if let Some(index) = &index {
            index.changed();
        }
    });
    spawn_stream(events, store.clone(), changes, wrap, shutdown);
    store
}

/// A plain reflecting watch (no deserialisation guard: core kinds, or metadata only), each
/// object stripped by `strip` before the store keeps it.
pub(super) fn spawn_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    strip: fn(&mut K),
    changes: broadcast::Sender<Change>,
    wrap: fn(Arc<K>) -> Change,
    shutdown: CancellationToken,
) -> Store<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config)
        .backoff(super::backoff::watch_backoff())
        .modify(strip)
        .reflect(writer);
    spawn_stream(stream, store.clone(), changes, wrap, shutdown);
    store
}

/// A watch whose store only says which objects exist ([`Presence`]): each object stripped by
/// `strip` is published on the change bus, and only its namespace, name and a hash of its UID
/// are kept; a relist that removed or replaced some publishes `removed()` (which ones is not
/// kept).
pub(super) fn spawn_presence<K>(
    api: Api<K>,
    config: watcher::Config,
    strip: fn(&mut K),
    changes: broadcast::Sender<Change>,
    wrap: fn(Arc<K>) -> Change,
    removed: fn() -> Change,
    shutdown: CancellationToken,
) -> Presence
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (set, mut writer) = presence::presence();
    let told = changes.clone();
    let stream = watcher(api, config)
        .backoff(super::backoff::watch_backoff())
        .modify(strip)
        .inspect_ok(move |event| {
            if writer.apply_watcher_event(event) > 0 {
                // Once the set no longer holds them. No subscriber (not the leader) is fine.
                let _ = told.send(removed());
            }
        });
    publish(stream, |_| None, changes, wrap, shutdown);
    set
}

/// The watch of the client records: each Secret parsed once into a [`super::CachedRecord`], which the
/// map keeps (and the change bus carries) instead of the Secret.
pub(super) fn spawn_records(
    api: Api<k8s_openapi::api::core::v1::Secret>,
    config: watcher::Config,
    changes: broadcast::Sender<Change>,
    shutdown: CancellationToken,
) -> Records {
    let (records, mut writer) = super::records::records();
    let run = watcher(api, config)
        .backoff(super::backoff::watch_backoff())
        .for_each(move |event| {
            match event {
                Ok(event) => {
                    for record in writer.apply(event) {
                        // No subscriber (not the leader) is fine.
                        let _ = changes.send(Change::Record(record));
                    }
                }
                Err(e) => tracing::warn!(
                    kind = "client record",
                    error = %e,
                    "watch error; retrying with backoff"
                ),
            }
            future::ready(())
        });
    tokio::spawn(async move {
        tokio::select! {
            () = run => {},
            () = shutdown.cancelled() => {},
        }
    });
    records
}
