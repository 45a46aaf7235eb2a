//! The controllers (run only by the lease holder): M2MApps become credentials, Organizations get
//! their status, orphaned client records are removed. Each reconcile runs
//! dereference (cache and API reads) -> plan (pure) -> apply (writes) -> status.

pub mod app;
mod backoff;
pub mod conditions;
mod error;
pub mod events;
#[cfg(test)]
mod fake_api;
mod hashing;
mod org;
pub mod org_plan;
mod org_triggers;
mod record_gc;
mod status_patch;
pub mod usage_status;
pub mod verified;
mod wake;

use std::{sync::Arc, time::Duration};

use futures::{Stream, StreamExt, future};
use kube::{
    Client,
    runtime::{
        Controller,
        controller::{self, Action},
        reflector::ObjectRef,
    },
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{
    BroadcastStream, UnboundedReceiverStream, errors::BroadcastStreamRecvError,
};
use tokio_util::sync::CancellationToken;

pub use error::Error;

use crate::{
    cache::{Cache, Change},
    credentials::secret::Endpoints,
    metrics::{KindLabels, Metrics, ReconcileLabels},
};

/// Settings of the controllers.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Namespace of the operator: client records live here.
    pub operator_namespace: String,
    /// Issuer and token URL written into every Secret.
    pub endpoints: Endpoints,
    /// How often an unchanged object is reconciled anyway.
    pub resync: Duration,
    /// Identity in Events (the pod name).
    pub instance: String,
    /// Where global apps may live (the token endpoint applies the same policy).
    pub global_apps: crate::tenancy::GlobalApps,
    /// The keys a `secretTemplate` may set.
    pub template_keys: crate::credentials::template::TemplateKeys,
    /// How often at most each replica writes its usage report (`--usage-report-interval`).
    pub usage_report_interval: Duration,
    /// How long a reconcile that wrote a client record waits for this replica's cache to hold
    /// it before writing the status ([`RECORD_VISIBLE_WITHIN`]).
    pub record_visible_within: Duration,
}

/// How long a reconcile waits for its record write to reach the cache: a watch event takes
/// milliseconds; past a watch's longest retry delay ([`crate::cache::backoff::MAX_DELAY`]) the
/// watch is down, and the reconcile gives its worker back and retries.
pub const RECORD_VISIBLE_WITHIN: Duration = crate::cache::backoff::MAX_DELAY;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub cache: Cache,
    pub config: ControllerConfig,
    pub events: crate::events::Publisher,
    pub metrics: Arc<Metrics>,
    /// Bounds concurrent argon2id work (memory and CPU) to the number of cores.
    hashing: hashing::HashingPool,
    /// Which version of each app's Secret is known to hold a recorded secret.
    verified: verified::VerifiedSecrets,
    /// Secret writes the API server refused, per app (no new secret until the wait is over).
    write_failures: app::write_failures::WriteFailures,
    /// Failed reconciles in a row, per object (the retry delay).
    backoffs: backoff::Backoffs,
    /// Every replica's usage report (quotas exceeded, previous secrets used).
    pub usage: Arc<crate::usage::publish::Board>,
}

impl Context {
    pub fn new(
        client: Client,
        cache: Cache,
        config: ControllerConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            events: crate::events::Publisher::new(
                client.clone(),
                crate::api::names::FIELD_MANAGER,
                &config.instance,
            ),
            client,
            cache,
            config,
            hashing: hashing::HashingPool::new(cores, metrics.clone()),
            metrics,
            verified: verified::VerifiedSecrets::default(),
            write_failures: Default::default(),
            backoffs: Default::default(),
            usage: Arc::default(),
        }
    }

    /// Forgets what was verified for apps no longer cached (deleted), so the memo does not grow
    /// with app churn over the life of the process. The record sweep calls this.
    fn forget_verified_of_gone_apps(&self) {
        let live = self
            .cache
            .apps
            .state()
            .iter()
            .filter_map(|app| app.metadata.uid.clone())
            .collect();
        self.verified.retain_live(&live);
    }
}

/// How long an M2MApp's reconcile waits for more triggers. Issuing credentials makes three
/// writes whose watch events arrive one after the other (the record, the Secret, the status);
/// without a wait each could start another reconcile, and one that started before the status
/// event reached the cache saw the old status and wrote it again.
const APP_DEBOUNCE: Duration = Duration::from_millis(200);
/// The same for Organizations, whose status counts their apps: a burst of new apps is counted
/// in one status write instead of one per app.
const ORG_DEBOUNCE: Duration = Duration::from_millis(500);

/// Runs every controller until `shutdown`.
///
/// If one of them ends before `shutdown` (it cannot, unless it panicked or a stream it depends on
/// closed), the others are stopped and this returns (a panic is passed on), so the leader's
/// supervisor sees the controllers gone, releases the Lease and reports the replica unhealthy.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let mut controllers = tokio::task::JoinSet::new();
    controllers.spawn(run_apps(ctx.clone(), shutdown.clone()));
    controllers.spawn(run_organizations(ctx.clone(), shutdown.clone()));
    controllers.spawn(record_gc::run(ctx, shutdown.clone()));
    let first = controllers.join_next().await;
    if shutdown.is_cancelled() {
        // A graceful stop: let the others finish their reconciles too.
        while controllers.join_next().await.is_some() {}
        return;
    }
    controllers.abort_all();
    if let Some(Err(e)) = first
        && e.is_panic()
    {
        std::panic::resume_unwind(e.into_panic());
    }
    tracing::error!("a controller stopped unexpectedly; stopping the others");
}

/// The objects of one kind from the cache's change bus (`pick`: `Change::app`, ...), shared:
/// each trigger gets the store's own `Arc`, never a copy. A subscriber that fell behind asks
/// for a full resync through `resync` (our own bus, not kube's `reflect_shared`: kube's applies
/// backpressure, so a slow controller would hold up the watches the token endpoint answers
/// from, and it drops deletions, which the record collector needs).
fn shared<T>(
    cache: &Cache,
    resync: &mpsc::UnboundedSender<()>,
    pick: impl Fn(Change) -> Option<Arc<T>> + Send + 'static,
) -> impl Stream<Item = Arc<T>> + Send + 'static
where
    T: Send + Sync + 'static,
{
    let resync = resync.clone();
    BroadcastStream::new(cache.subscribe()).filter_map(move |item| {
        future::ready(match item {
            Ok(change) => pick(change),
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                tracing::warn!(missed, "change stream fell behind; reconciling everything");
                let _ = resync.send(());
                None
            }
        })
    })
}

/// A stream that fires once now, at every periodic resync, and on every resync request.
fn reconcile_all(
    rx: mpsc::UnboundedReceiver<()>,
    resync: Duration,
) -> impl Stream<Item = ()> + Send + 'static {
    let requests = UnboundedReceiverStream::new(rx);
    futures::stream::once(future::ready(())).chain(futures::stream::select(
        requests,
        wake::resync_ticks(resync),
    ))
}

/// The objects (found by `find` among the UIDs a usage report changed) to reconcile, so their
/// status shows what the replicas reported.
fn usage_triggers<K>(
    ctx: &Context,
    find: impl Fn(&Cache, &std::collections::HashSet<String>) -> Vec<ObjectRef<K>> + Send + 'static,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + Send + Sync + 'static,
{
    let cache = ctx.cache.clone();
    // Other changes than first events reconcile an object at most once per refresh (a busy
    // app's report changes every few seconds on each replica): its status catches up then.
    let mut limiter = usage_status::Limiter::default();
    BroadcastStream::new(ctx.usage.subscribe())
        .filter_map(move |item| {
            future::ready(match item {
                Ok(changes) => {
                    let uids = limiter.admit(&changes, std::time::Instant::now());
                    Some(futures::stream::iter(find(&cache, &uids)))
                }
                // Missed changes are seen at the next report change or resync.
                Err(BroadcastStreamRecvError::Lagged(_)) => None,
            })
        })
        .flatten()
}

async fn run_apps(ctx: Arc<Context>, shutdown: CancellationToken) {
    let cache = ctx.cache.clone();
    let (resync, resync_rx) = mpsc::unbounded_channel();
    let (apps_by_org, apps_by_ns) = (cache.apps.clone(), cache.apps.clone());
    let org_triggers = org_triggers::OrgTriggers::default();
    let orgs = cache.organizations.clone();
    // An Organization change concerns its apps only when what they read of it changed.
    let relevant_orgs = move |c: Change| {
        let org = c.organization()?;
        let cached = orgs.get(&ObjectRef::from_obj(org.as_ref())).is_some();
        org_triggers.concerns_apps(&org, cached).then_some(org)
    };
    Controller::for_shared_stream(shared(&cache, &resync, Change::app), cache.apps.clone())
        .watches_shared_stream(shared(&cache, &resync, relevant_orgs), move |org| {
            app::triggers::apps_of_org(&apps_by_org, &org)
        })
        .watches_shared_stream(shared(&cache, &resync, Change::namespace), move |ns| {
            app::triggers::apps_in_namespace(&apps_by_ns, &ns)
        })
        .watches_shared_stream(
            shared(
                &cache,
                &resync,
                app::triggers::tenant_secrets_or_resync(&resync),
            ),
            |secret| app::triggers::owner_of_secret(&secret),
        )
        .reconcile_on(
            shared(&cache, &resync, Change::record)
                .filter_map(|record| future::ready(app::triggers::app_of_record(&record))),
        )
        .reconcile_on(usage_triggers(&ctx, |cache, uids| {
            app::triggers::apps_with_uids(&cache.apps, uids)
        }))
        .reconcile_all_on(reconcile_all(resync_rx, ctx.config.resync))
        .with_config(
            controller::Config::default()
                .concurrency(16)
                .debounce(APP_DEBOUNCE),
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(app::reconcile, error_policy::<crate::api::M2MApp>, ctx)
        .for_each(|_| future::ready(()))
        .await;
}

async fn run_organizations(ctx: Arc<Context>, shutdown: CancellationToken) {
    let cache = ctx.cache.clone();
    let (resync, resync_rx) = mpsc::unbounded_channel();
    let orgs_by_code = cache.clone();
    Controller::for_shared_stream(
        shared(&cache, &resync, Change::organization),
        cache.organizations.clone(),
    )
    // Another Organization with the same code can flip this one's duplicate state.
    .watches_shared_stream(shared(&cache, &resync, Change::organization), move |org| {
        org::same_code(&orgs_by_code, &org)
    })
    .watches_shared_stream(shared(&cache, &resync, Change::app), |app| {
        org::org_of_app(&app)
    })
    .reconcile_on(usage_triggers(&ctx, |cache, uids| {
        app::triggers::orgs_with_uids(&cache.organizations, uids)
    }))
    .reconcile_all_on(reconcile_all(resync_rx, ctx.config.resync))
    .with_config(
        controller::Config::default()
            .concurrency(4)
            .debounce(ORG_DEBOUNCE),
    )
    .graceful_shutdown_on(async move { shutdown.cancelled().await })
    .run(
        org::reconcile,
        error_policy::<crate::api::Organization>,
        ctx,
    )
    .for_each(|_| future::ready(()))
    .await;
}

/// Permanent problems wait for a change of the object; conflicts with another writer are
/// retried soon; everything else waits exponentially longer per object (5 s doubling to 5 min),
/// and a refused Secret write exactly as long as the app's write failure says.
fn error_policy<K: kube::Resource<DynamicType = ()>>(
    obj: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    tracing::warn!(
        kind = %K::kind(&()),
        namespace = obj.meta().namespace.as_deref().unwrap_or(""),
        name = obj.meta().name.as_deref().unwrap_or(""),
        error = %error,
        category = error.category(),
        "reconcile failed"
    );
    let refused_write = match error {
        Error::SecretRefused { .. } => obj
            .meta()
            .uid
            .as_deref()
            .and_then(|uid| ctx.write_failures.get(uid))
            .map(|f| f.retry_in(tokio::time::Instant::now())),
        _ => None,
    };
    if error.is_permanent() {
        Action::await_change()
    } else if error.category() == "api_conflict" {
        Action::requeue(Duration::from_millis(500))
    } else if let Some(wait) = refused_write {
        Action::requeue(wait + Duration::from_millis(100))
    } else {
        Action::requeue(ctx.backoffs.failed(&object_key(obj.as_ref())))
    }
}

/// The key of an object in the per-object memos: kind, namespace and name.
fn object_key<K: kube::Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// Records the outcome and duration of one reconcile.
fn observe<K: kube::Resource<DynamicType = ()>>(
    ctx: &Context,
    kind: &'static str,
    obj: &K,
    started: std::time::Instant,
    result: &Result<Action, Error>,
) {
    let outcome = match result {
        Ok(_) => {
            ctx.backoffs.succeeded(&object_key(obj));
            "success"
        }
        Err(e) => e.category(),
    };
    ctx.metrics
        .reconciles
        .get_or_create(&ReconcileLabels {
            kind,
            result: outcome,
        })
        .inc();
    ctx.metrics
        .reconcile_duration
        .get_or_create(&KindLabels { kind })
        .observe(started.elapsed().as_secs_f64());
}
