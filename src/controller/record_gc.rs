//! Removes client records whose M2MApp is gone (and what the controller remembered of its
//! Secret). Records live in the operator's namespace, so no ownerReference can tie them to the
//! app; this loop does what the garbage collector does for the tenant Secrets. (The token
//! endpoint already refuses a record without its app.) An app listed in `cache.unreadable`
//! exists though it is not cached: its record is kept.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Preconditions},
    runtime::reflector::ObjectRef,
};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::{Context, Error};
use crate::{
    api::M2MApp,
    cache::{CachedRecord, Change},
    credentials::record::record_name,
};

/// How often every record is checked even without a change.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let mut changes = ctx.cache.subscribe();
    sweep(&ctx).await;
    let mut ticker = tokio::time::interval(SWEEP_EVERY);
    ticker.reset();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => sweep(&ctx).await,
            change = changes.recv() => match change {
                Ok(Change::App(app)) => {
                    if let Some(uid) = app.metadata.uid.as_deref()
                        && !app_exists(&ctx, &app.namespace().unwrap_or_default(), &app.name_any(), uid)
                        && !ctx.cache.unreadable.has_uid(uid)
                    {
                        ctx.verified.forget(uid);
                        let cached = ctx.cache.records.get(&record_name(uid));
                        if let Some(record) = cached {
                            delete(&ctx, &record).await;
                        }
                    }
                }
                Ok(Change::Record(record)) => {
                    if is_orphan(&ctx, &record) {
                        delete(&ctx, &record).await;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => sweep(&ctx).await,
                Err(RecvError::Closed) => return,
            },
        }
    }
}

fn app_exists(ctx: &Context, namespace: &str, name: &str, uid: &str) -> bool {
    ctx.cache
        .apps
        .get(&ObjectRef::<M2MApp>::new(name).within(namespace))
        .is_some_and(|app| app.metadata.uid.as_deref() == Some(uid))
}

/// A record is an orphan when no cached app has its UID under its namespace and name.
fn is_orphan(ctx: &Context, record: &CachedRecord) -> bool {
    if record.deleting {
        return false;
    }
    let Some(uid) = record.app_uid() else {
        return false;
    };
    // An app that exists but cannot be read is not in the cache: keep its record.
    if ctx.cache.unreadable.has_uid(uid) {
        return false;
    }
    match super::app::triggers::app_of_record(record) {
        Some(app) => !app_exists(
            ctx,
            app.namespace.as_deref().unwrap_or_default(),
            &app.name,
            uid,
        ),
        None => true,
    }
}

async fn sweep(ctx: &Context) {
    ctx.forget_verified_of_gone_apps();
    let orphans: Vec<_> = ctx
        .cache
        .records
        .state()
        .into_iter()
        .filter(|r| is_orphan(ctx, r))
        .collect();
    for record in orphans {
        delete(ctx, &record).await;
    }
}

/// Deletes a record, guarded by the UID and resourceVersion the collector saw: a record that
/// was re-created or rewritten since (by a successor leader, or the app's own reconcile) is
/// left alone, and the next sweep looks at it again.
async fn delete(ctx: &Context, record: &CachedRecord) {
    let name = record.name.to_string();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.config.operator_namespace);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: record.uid.as_deref().map(str::to_owned),
            resource_version: record.resource_version.as_deref().map(str::to_owned),
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => tracing::info!(
            record = name,
            "deleted the client record of a deleted M2MApp"
        ),
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(source) => {
            let e = Error::DeleteRecord {
                name: name.clone(),
                source,
            };
            tracing::warn!(error = %e, "deleting a client record failed; the next sweep retries");
        }
    }
}
