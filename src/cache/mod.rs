//! The in-memory view of the cluster every replica keeps: one watch per kind, stripped of what
//! the operator never reads, feeding reflector stores (read by the controllers and the token
//! endpoint) and a broadcast of changes (the controllers' triggers).
//!
//! - Organizations and M2MApps: the fields some reader reads ([`strip`] says which). An object
//!   that does not deserialise is removed from the store and listed in [`Cache::unreadable`]
//!   ([`guarded`]): it gets no tokens, and it never stops the watch.
//! - Namespaces and the tenant Secrets the operator manages: metadata only (labels, owners).
//! - Client records: Secrets in the operator's namespace, with data (they hold the hashes).
//!
//! The watches of what others write list in pages of [`PAGE_SIZE`] objects.

mod guarded;
pub mod strip;
mod unreadable;

pub use guarded::Tombstone;
pub use unreadable::{Unreadable, UnreadableObject};

use std::{
    collections::HashMap,
    fmt::Debug,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use futures::{Stream, StreamExt, future};
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

/// Objects per page of the initial list (and relists) of every watch of objects others write
/// (M2MApps, Organizations, Namespaces, tenant Secrets; the client records are the operator's
/// own, ~2 KB each, and keep kube's 500). A page is one response, buffered and parsed whole,
/// which measured ~2.6-3x its JSON at the peak; the API server stores objects of up to ~1.5 MiB
/// (etcd's default request limit) and a tenant chooses how large its M2MApps' metadata are. So
/// a page of maximal objects is ~15 MiB of JSON, ~45 MiB at the peak; at kube's 500 it would be
/// 750 MiB (measured: 500 M2MApps of 210 KB on average in one page took the operator to 376 MiB,
/// pages of 10 to 118 MiB). Typical objects are 2-5 KB: 10,000 apps list in 1,000 requests of
/// ~3-6 ms each (docs/operations.md, memory).
pub const PAGE_SIZE: u32 = 10;

/// One observed change (an apply or a delete) of a cached object.
#[derive(Clone, Debug)]
pub enum Change {
    Organization(Arc<Organization>),
    App(Arc<M2MApp>),
    Namespace(Arc<PartialObjectMeta<Namespace>>),
    TenantSecret(Arc<PartialObjectMeta<Secret>>),
    Record(Arc<Secret>),
}

impl Change {
    pub fn organization(self) -> Option<Arc<Organization>> {
        match self {
            Change::Organization(org) => Some(org),
            _ => None,
        }
    }

    pub fn app(self) -> Option<Arc<M2MApp>> {
        match self {
            Change::App(app) => Some(app),
            _ => None,
        }
    }

    pub fn namespace(self) -> Option<Arc<PartialObjectMeta<Namespace>>> {
        match self {
            Change::Namespace(ns) => Some(ns),
            _ => None,
        }
    }

    pub fn tenant_secret(self) -> Option<Arc<PartialObjectMeta<Secret>>> {
        match self {
            Change::TenantSecret(secret) => Some(secret),
            _ => None,
        }
    }

    pub fn record(self) -> Option<Arc<Secret>> {
        match self {
            Change::Record(record) => Some(record),
            _ => None,
        }
    }
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
    /// M2MApps and Organizations that exist but do not deserialise (not in the stores above).
    pub unreadable: Arc<Unreadable>,
    changes: broadcast::Sender<Change>,
}

impl Cache {
    /// Starts the watches on the runtime; they run until `shutdown`.
    pub fn start(client: &Client, operator_namespace: &str, shutdown: CancellationToken) -> Self {
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        let org_codes = Arc::new(OrgCodes::default());
        let unreadable = Arc::new(Unreadable::default());
        let config = || watcher::Config::default().page_size(PAGE_SIZE);
        let managed = format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}");
        let records_selector = format!("{managed},{LABEL_COMPONENT}={COMPONENT_CLIENT_RECORD}");

        let organizations = spawn_guarded(
            Api::<DeserializeGuard<Organization>>::all(client.clone()),
            Guarded {
                config: config(),
                strip: strip::organization,
                unreadable: unreadable.clone(),
                index: Some(org_codes.clone()),
            },
            changes.clone(),
            Change::Organization,
            shutdown.clone(),
        );
        let apps = spawn_guarded(
            Api::<DeserializeGuard<M2MApp>>::all(client.clone()),
            Guarded {
                config: config(),
                strip: strip::app,
                unreadable: unreadable.clone(),
                index: None,
            },
            changes.clone(),
            Change::App,
            shutdown.clone(),
        );
        let (namespaces, writer) = reflector::store();
        spawn_stream(
            watcher(
                Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                config(),
            )
            .default_backoff()
            .modify(strip::namespace)
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
                config().labels(&tenant_selector),
            )
            .default_backoff()
            .modify(strip::tenant_secret)
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
            .modify(strip::own)
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
            unreadable,
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
            unreadable: Arc::new(Unreadable::default()),
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

/// How a guarded watch is set up.
struct Guarded<K> {
    config: watcher::Config,
    strip: fn(&mut K),
    unreadable: Arc<Unreadable>,
    /// Told of every event once the store has it.
    index: Option<Arc<OrgCodes>>,
}

/// A watch of a custom resource in which an object that does not deserialise is removed from
/// the store and listed as unreadable ([`guarded`]) instead of failing the whole watch.
fn spawn_guarded<K>(
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
        watcher(api, setup.config).default_backoff(),
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
