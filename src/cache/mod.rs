//! The in-memory view of the cluster every replica keeps: one watch per kind, stripped of what
//! the operator never reads, feeding reflector stores (read by the controllers and the token
//! endpoint) and a broadcast of changes (the controllers' triggers).
//!
//! - Organizations and M2MApps: the fields some reader reads ([`strip`] says which). An object
//!   that does not deserialise is removed from the store and listed in [`Cache::unreadable`]
//!   ([`guarded`]): it gets no tokens, and it never stops the watch.
//! - Namespaces: metadata only (identity, labels). The tenant Secrets the operator manages: their
//!   owner on the change bus, only name and namespace in the store.
//! - Client records: Secrets in the operator's namespace, parsed on arrival ([`records`]): the
//!   record and a few metadata fields, not the Secret, in a map by name ([`keyed`]).
//!
//! The watches of what others write list in pages of [`PAGE_SIZE`] objects.

pub mod backoff;
mod guarded;
pub mod keyed;
mod org_codes;
pub mod presence;
pub mod records;
mod streams;
pub mod strip;
mod unreadable;

pub use guarded::Tombstone;
pub use org_codes::{OrgCodes, SameCode};
pub use presence::{Presence, PresenceWriter};
pub use records::{CachedRecord, Records, RecordsWriter};
pub use unreadable::{Unreadable, UnreadableObject};

use std::{fmt::Debug, sync::Arc};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, Client, Resource,
    core::{DeserializeGuard, PartialObjectMeta},
    runtime::{
        reflector::{self, Store},
        watcher,
    },
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use streams::{Guarded, spawn_guarded, spawn_presence, spawn_records, spawn_watch};

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
    Record(Arc<CachedRecord>),
    /// A relist of the tenant Secrets (after the watch was down) found some deleted, or deleted
    /// and created again under the same name (another UID: a planted one may name no owner),
    /// which no Delete event told of; whose they were is not kept (the set holds names and UID
    /// hashes only), so their apps are found by reconciling every app.
    TenantSecretsRemoved,
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

    pub fn record(self) -> Option<Arc<CachedRecord>> {
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
    /// The tenant Secrets that exist, by namespace and name (nothing else of them).
    pub tenant_secrets: Presence,
    /// Client records, parsed, by name ([`records`]).
    pub records: Records,
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
        let namespaces = spawn_watch(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            config(),
            strip::namespace,
            changes.clone(),
            Change::Namespace,
            shutdown.clone(),
        );
        // Tenant Secrets only trigger reconciles of their owner (the change bus carries what says
        // who that is) and tell the controller whether they exist (all [`Presence`] keeps). Client
        // records carry the managed-by label too; they have a watch of their own.
        let tenant_selector = format!("{managed},{LABEL_COMPONENT}!={COMPONENT_CLIENT_RECORD}");
        let tenant_secrets = spawn_presence(
            Api::<PartialObjectMeta<Secret>>::all(client.clone()),
            config().labels(&tenant_selector),
            strip::tenant_secret,
            changes.clone(),
            Change::TenantSecret,
            || Change::TenantSecretsRemoved,
            shutdown.clone(),
        );
        let records = spawn_records(
            Api::<Secret>::namespaced(client.clone(), operator_namespace),
            watcher::Config::default().labels(&records_selector),
            changes.clone(),
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
        let (tenant_secrets, secrets_w) = presence::presence();
        let (records, records_w) = records::records();
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
    pub async fn wait_until_ready(&self) -> Result<(), WatchStopped> {
        self.organizations.wait_until_ready().await?;
        self.apps.wait_until_ready().await?;
        self.namespaces.wait_until_ready().await?;
        self.tenant_secrets.wait_until_ready().await?;
        Ok(self.records.wait_until_ready().await?)
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

/// A watch stopped before the cache had its first list.
#[derive(Debug, thiserror::Error)]
pub enum WatchStopped {
    #[error("a watch stopped before its first list was complete")]
    Store(#[from] reflector::store::WriterDropped),
    #[error(transparent)]
    Keyed(#[from] keyed::WriterDropped),
}

/// Writers of a [`Cache::detached`] cache.
pub struct CacheWriters {
    pub organizations: reflector::store::Writer<Organization>,
    pub apps: reflector::store::Writer<M2MApp>,
    pub namespaces: reflector::store::Writer<PartialObjectMeta<Namespace>>,
    pub tenant_secrets: PresenceWriter,
    pub records: RecordsWriter,
}

/// Puts `obj` into a detached cache's store.
pub fn put<K>(writer: &mut reflector::store::Writer<K>, obj: K)
where
    K: Resource + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(&watcher::Event::Apply(obj));
}
