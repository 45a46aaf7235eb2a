//! The in-memory view of the cluster every replica keeps: one watch per kind, stripped of what
//! the operator never reads, feeding reflector stores (read by the controllers and the token
//! endpoint) and a broadcast of changes (the controllers' triggers).
//!
//! - Organizations and M2MApps: full objects without `managedFields` and the last-applied
//!   annotation. A malformed object is logged and skipped; it never stops the watch.
//! - Namespaces and the tenant Secrets the operator manages: metadata only (labels, owners).
//! - Client records: Secrets in the operator's namespace, with data (they hold the hashes).

use std::{
    collections::HashMap,
    fmt::Debug,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use futures::{Stream, StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, Client, Resource,
    core::{DeserializeGuard, PartialObjectMeta},
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher::{self, watcher},
    },
};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::{
    api::{
        M2MApp, Organization,
        names::{LABEL_MANAGED_BY, MANAGED_BY_VALUE},
    },
    credentials::record::{COMPONENT_CLIENT_RECORD, LABEL_COMPONENT},
};

/// How many changes a slow subscriber may fall behind before it resyncs everything.
const CHANGE_BUFFER: usize = 16 * 1024;

/// One observed change (an apply or a delete) of a cached object.
#[derive(Clone, Debug)]
pub enum Change {
    Organization(Arc<Organization>),
    App(Arc<M2MApp>),
    Namespace(Arc<PartialObjectMeta<Namespace>>),
    TenantSecret(Arc<PartialObjectMeta<Secret>>),
    Record(Arc<Secret>),
}

/// Read access to everything cached.
#[derive(Clone)]
pub struct Cache {
    pub organizations: Store<Organization>,
    /// The Organizations grouped by code (kept in step with `organizations`).
    pub org_codes: Arc<OrgCodes>,
    pub apps: Store<M2MApp>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub tenant_secrets: Store<PartialObjectMeta<Secret>>,
    pub records: Store<Secret>,
    changes: broadcast::Sender<Change>,
}

impl Cache {
    /// Starts the watches on the runtime; they run until `shutdown`.
    pub fn start(client: &Client, operator_namespace: &str, shutdown: CancellationToken) -> Self {
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        let org_codes = Arc::new(OrgCodes::default());
        let managed = format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}");
        let records_selector = format!("{managed},{LABEL_COMPONENT}={COMPONENT_CLIENT_RECORD}");

        let organizations = spawn_guarded(
            Api::<DeserializeGuard<Organization>>::all(client.clone()),
            watcher::Config::default(),
            changes.clone(),
            Change::Organization,
            Some(org_codes.clone()),
            shutdown.clone(),
        );
        let apps = spawn_guarded(
            Api::<DeserializeGuard<M2MApp>>::all(client.clone()),
            watcher::Config::default(),
            changes.clone(),
            Change::App,
            None,
            shutdown.clone(),
        );
        let (namespaces, writer) = reflector::store();
        spawn_stream(
            watcher(
                Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .modify(strip)
            .reflect(writer),
            namespaces.clone(),
            changes.clone(),
            Change::Namespace,
            shutdown.clone(),
        );
        // Tenant Secrets only trigger reconciles of their owner: keep just what says who that
        // is. (Client records carry the managed-by label too; they have a watch of their own.)
        let tenant_selector = format!("{managed},{LABEL_COMPONENT}!={COMPONENT_CLIENT_RECORD}");
        let (tenant_secrets, writer) = reflector::store();
        spawn_stream(
            watcher(
                Api::<PartialObjectMeta<Secret>>::all(client.clone()),
                watcher::Config::default().labels(&tenant_selector),
            )
            .default_backoff()
            .modify(keep_identity_and_owners)
            .reflect(writer),
            tenant_secrets.clone(),
            changes.clone(),
            Change::TenantSecret,
            shutdown.clone(),
        );
        let (records, writer) = reflector::store();
        spawn_stream(
            watcher(
                Api::<Secret>::namespaced(client.clone(), operator_namespace),
                watcher::Config::default().labels(&records_selector),
            )
            .default_backoff()
            .modify(strip)
            .reflect(writer),
            records.clone(),
            changes.clone(),
            Change::Record,
            shutdown,
        );
        Self {
            organizations,
            org_codes,
            apps,
            namespaces,
            tenant_secrets,
            records,
            changes,
        }
    }

    /// A cache fed by hand instead of watches (tests, benchmarks, fuzzing): apply objects
    /// through the returned writers.
    pub fn detached() -> (Self, CacheWriters) {
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        let (organizations, orgs_w) = reflector::store();
        let (apps, apps_w) = reflector::store();
        let (namespaces, ns_w) = reflector::store();
        let (tenant_secrets, secrets_w) = reflector::store();
        let (records, records_w) = reflector::store();
        let cache = Self {
            organizations,
            org_codes: Arc::new(OrgCodes::default()),
            apps,
            namespaces,
            tenant_secrets,
            records,
            changes,
        };
        let writers = CacheWriters {
            organizations: orgs_w,
            apps: apps_w,
            namespaces: ns_w,
            tenant_secrets: secrets_w,
            records: records_w,
        };
        (cache, writers)
    }

    /// Waits until every store has its initial list.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.organizations.wait_until_ready().await?;
        self.apps.wait_until_ready().await?;
        self.namespaces.wait_until_ready().await?;
        self.tenant_secrets.wait_until_ready().await?;
        self.records.wait_until_ready().await
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

/// Writers of a [`Cache::detached`] cache.
pub struct CacheWriters {
    pub organizations: reflector::store::Writer<Organization>,
    pub apps: reflector::store::Writer<M2MApp>,
    pub namespaces: reflector::store::Writer<PartialObjectMeta<Namespace>>,
    pub tenant_secrets: reflector::store::Writer<PartialObjectMeta<Secret>>,
    pub records: reflector::store::Writer<Secret>,
}

/// Puts `obj` into a detached cache's store.
pub fn put<K>(writer: &mut reflector::store::Writer<K>, obj: K)
where
    K: Resource + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(&watcher::Event::Apply(obj));
}

/// The Organizations grouped by their effective code, so the token endpoint (on every request)
/// and the controllers (on every reconcile) learn which Organizations share a code with one map
/// lookup instead of a scan of every Organization. Rebuilt from the store on the first use
/// after any Organization changed.
#[derive(Default)]
pub struct OrgCodes {
    /// Bumped after each Organization event has reached the store.
    changes: AtomicU64,
    built: RwLock<BuiltCodes>,
}

/// Organizations sharing one code (shared: a lookup clones one `Arc`, allocates nothing).
pub type SameCode = Arc<[Arc<Organization>]>;

#[derive(Default)]
struct BuiltCodes {
    /// The `changes` count read before the store was read; `None` until first built.
    at: Option<u64>,
    by_code: HashMap<String, SameCode>,
}

impl OrgCodes {
    /// Records that the Organization store changed (the watch calls this; so must whoever
    /// writes a detached cache's Organizations).
    pub fn changed(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// Every Organization in `store` whose effective code is `code` (ignoring ASCII case: codes
    /// are unique case-insensitively), as of a snapshot taken after the last [`Self::changed`].
    pub fn sharing(&self, code: &str, store: &Store<Organization>) -> SameCode {
        let code = code.to_ascii_lowercase();
        let code = code.as_str();
        // Read the count before the store: a change landing in between makes the next call
        // rebuild again, never keeps a snapshot older than its label.
        let seen = self.changes.load(Ordering::Acquire);
        if let Ok(built) = self.built.read()
            && built.at == Some(seen)
        {
            return built
                .by_code
                .get(code)
                .cloned()
                .unwrap_or_else(|| Arc::new([]));
        }
        let mut grouped: HashMap<String, Vec<Arc<Organization>>> = HashMap::new();
        for org in store.state() {
            grouped
                .entry(org.effective_code().to_ascii_lowercase())
                .or_default()
                .push(org);
        }
        let by_code: HashMap<String, SameCode> = grouped
            .into_iter()
            .map(|(code, orgs)| (code, orgs.into()))
            .collect();
        let found = by_code.get(code).cloned().unwrap_or_else(|| Arc::new([]));
        if let Ok(mut built) = self.built.write() {
            *built = BuiltCodes {
                at: Some(seen),
                by_code,
            };
        }
        found
    }
}

/// Drops what the operator never reads, so 10k apps fit in tens of MiB.
fn strip<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// What a tenant Secret's cache entry keeps: its identity, its owners and its `m2m.dev/app`
/// label (the triggers of its app's reconcile), not its other labels or annotations.
fn keep_identity_and_owners(secret: &mut PartialObjectMeta<Secret>) {
    let meta = &mut secret.metadata;
    let app = meta
        .labels
        .as_mut()
        .and_then(|l| l.remove_entry(crate::api::names::LABEL_APP));
    *meta = kube::core::ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        uid: meta.uid.take(),
        resource_version: meta.resource_version.take(),
        owner_references: meta.owner_references.take(),
        labels: app.map(|entry| [entry].into()),
        ..Default::default()
    };
}

/// Runs a reflecting watch stream, publishing each touched object as a [`Change`]. A change
/// carries the store's own copy of the object when it is the version just stored, so the
/// change buffer holds no second copy of the cache.
fn spawn_stream<K, S>(
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
    let kind = std::any::type_name::<K>();
    let run = stream.touched_objects().for_each(move |result| {
        match result {
            Ok(obj) => {
                let stored = store
                    .get(&reflector::ObjectRef::from_obj(&obj))
                    .filter(|s| s.meta().resource_version == obj.meta().resource_version);
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

/// A watch of a custom resource in which an object that does not deserialize is logged and
/// left out, instead of failing the whole watch.
/// `index`, if given, is told of every event once the store has it.
fn spawn_guarded<K>(
    api: Api<DeserializeGuard<K>>,
    config: watcher::Config,
    changes: broadcast::Sender<Change>,
    wrap: fn(Arc<K>) -> Change,
    index: Option<Arc<OrgCodes>>,
    shutdown: CancellationToken,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let events = watcher(api, config)
        .default_backoff()
        .try_filter_map(|event| future::ready(Ok(valid_only(event))))
        .modify(strip)
        .reflect(writer)
        // Every event (a relist's removals land at its end, with no object of their own).
        .inspect(move |_| {
            if let Some(index) = &index {
                index.changed();
            }
        });
    spawn_stream(events, store.clone(), changes, wrap, shutdown);
    store
}

fn valid_only<K: Resource<DynamicType = ()>>(
    event: watcher::Event<DeserializeGuard<K>>,
) -> Option<watcher::Event<K>> {
    let keep = |guard: DeserializeGuard<K>| match guard.0 {
        Ok(obj) => Some(obj),
        Err(invalid) => {
            tracing::warn!(
                kind = %K::kind(&()),
                namespace = invalid.metadata.namespace.as_deref().unwrap_or(""),
                name = invalid.metadata.name.as_deref().unwrap_or(""),
                error = %invalid.error,
                "ignoring an object that does not match the operator's types"
            );
            None
        }
    };
    match event {
        watcher::Event::Apply(g) => keep(g).map(watcher::Event::Apply),
        watcher::Event::Delete(g) => keep(g).map(watcher::Event::Delete),
        watcher::Event::InitApply(g) => keep(g).map(watcher::Event::InitApply),
        watcher::Event::Init => Some(watcher::Event::Init),
        watcher::Event::InitDone => Some(watcher::Event::InitDone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::M2MAppSpec;

    #[test]
    fn strip_drops_managed_fields_and_last_applied() {
        let mut app = M2MApp::new("a", M2MAppSpec::default());
        app.metadata.managed_fields = Some(vec![Default::default()]);
        app.metadata.annotations = Some(
            [
                (
                    "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                    "{}".to_string(),
                ),
                ("m2m.dev/rotate".to_string(), "1".to_string()),
            ]
            .into(),
        );
        strip(&mut app);
        assert!(app.metadata.managed_fields.is_none());
        assert_eq!(app.metadata.annotations.unwrap().len(), 1);
    }

    #[test]
    fn invalid_objects_are_skipped_not_fatal() {
        let bad: DeserializeGuard<M2MApp> = serde_json::from_value(
            serde_json::json!({"apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
                "metadata": {"name": "x", "namespace": "n"}, "spec": {"audiences": "not-a-list"}}),
        )
        .unwrap();
        assert!(bad.0.is_err());
        assert!(valid_only(watcher::Event::Apply(bad)).is_none());
        let good: DeserializeGuard<M2MApp> = serde_json::from_value(
            serde_json::json!({"apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
                "metadata": {"name": "x", "namespace": "n"}, "spec": {"audiences": ["a"]}}),
        )
        .unwrap();
        assert!(matches!(
            valid_only(watcher::Event::Apply(good)),
            Some(watcher::Event::Apply(_))
        ));
    }
}
