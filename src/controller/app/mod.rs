//! The M2MApp reconcile, top to bottom: [`observe`] (dereference: cache and API reads) ->
//! [`plan`] (pure: every decision) -> [`apply`] (the writes it calls for, record before Secret)
//! -> [`status`] (pure: from what was applied), then the status write and the Events.

pub mod apply;
pub mod observe;
pub mod plan;
pub mod status;
#[cfg(test)]
mod tests_api;
pub mod triggers;
pub mod write_failures;

use std::{sync::Arc, time::Instant};

use k8s_openapi::jiff::Timestamp;
use kube::{Api, runtime::controller::Action};

use super::{Context, Error, events, status_patch::patch_status};
use crate::api::M2MApp;

const KIND: &str = "M2MApp";

pub async fn reconcile(app: Arc<M2MApp>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_app(&app, &ctx).await;
    super::observe(&ctx, KIND, app.as_ref(), started, &result);
    result
}

async fn reconcile_app(app: &M2MApp, ctx: &Context) -> Result<Action, Error> {
    let keys = observe::AppKeys::of(app).ok_or(Error::MissingObjectKey)?;
    if app.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let observed = observe::observe(ctx, app, keys, Timestamp::now()).await?;
    let plan = plan::plan(&observed);
    let (applied, failure) = match apply::apply(ctx, &observed, plan).await {
        Ok(applied) => {
            // A reconcile that was free to write the Secret, and succeeded, ends any streak.
            if !observed.secret_writes_deferred {
                ctx.write_failures.cleared(&observed.keys.uid);
            }
            let failure = observed
                .write_failure
                .clone()
                .filter(|_| observed.secret_writes_deferred);
            (applied, failure)
        }
        Err(error @ Error::SecretRefused { .. }) => {
            refused(ctx, &observed, &error).await?;
            return Err(error);
        }
        Err(error) => return Err(error),
    };
    if let Err(behind) = record_visible(ctx, &observed, &applied).await {
        // What was written is told; the status follows when this replica can answer for it.
        for note in applied.notes {
            events::publish(ctx, app, note).await;
        }
        return Err(behind);
    }

    let mut inputs = status::StatusInputs::new(&observed, applied.record.as_ref());
    // The Secret version verified last (this reconcile's writes included), for the next process.
    inputs.verified_secret = ctx.verified.get(&observed.keys.uid).map(|v| v.marker());
    inputs.write_failure = failure.as_ref().map(|f| f.message.clone());
    let desired = status::status(&inputs);
    write_status(ctx, &observed, &desired).await?;
    let shown_quota = app.status.as_ref().and_then(|s| s.quota.as_deref());
    let quota_note = super::usage_status::newly_exceeded(shown_quota, desired.quota.as_deref())
        .then(|| super::usage_status::exceeded_note(desired.quota.as_deref()));
    for note in applied
        .notes
        .into_iter()
        .chain(status::refusal_note(app, &desired))
        .chain(quota_note)
    {
        events::publish(ctx, app, note).await;
    }
    let due = [
        status::due_after(app, applied.record.as_ref(), observed.now),
        inputs.usage().wake,
        retire_wake(&observed, applied.record.as_ref()),
        failure.map(|f| f.retry_in(tokio::time::Instant::now())),
    ];
    Ok(super::wake::after(due, ctx.config.resync))
}

/// Waits until this replica's cache holds the client record this reconcile wrote, so that a
/// status saying the credentials are issued (or a secret revoked) is never ahead of what this
/// replica's token endpoint does.
async fn record_visible(
    ctx: &Context,
    o: &observe::Observed<'_>,
    applied: &apply::Applied,
) -> Result<(), Error> {
    let Some(superseded) = &applied.record_superseded else {
        return Ok(());
    };
    let name = crate::credentials::record::record_name(&o.keys.uid);
    let within = ctx.config.record_visible_within;
    if ctx.cache.record_visible(&name, superseded, within).await {
        Ok(())
    } else {
        Err(Error::CacheBehind {
            name,
            waited: within,
        })
    }
}

/// When the previous secret is to be retired for being unused, if it stays so; soon while the
/// replicas' reports are not all read yet (the decision waits for them).
fn retire_wake(
    o: &observe::Observed<'_>,
    record: Option<&crate::credentials::record::ClientRecord>,
) -> Option<std::time::Duration> {
    let record = record?;
    record.previous.as_ref()?;
    if o.app.retire_previous_when_unused_for().is_some() && o.retire_unused_after.is_none() {
        return Some(std::time::Duration::from_secs(2));
    }
    match crate::rotation::retire_unused(
        record,
        o.retire_unused_after,
        o.previous_last_used(),
        o.now,
    ) {
        crate::rotation::Retire::At(at) => std::time::Duration::try_from(at.duration_since(o.now))
            .ok()
            .map(|d| d + std::time::Duration::from_millis(200)),
        _ => None,
    }
}

/// The API server refused a Secret write: remember it (no new secret until the backoff step
/// is over), say so in the status, and once per streak (or when the refusal changes) in an
/// Event.
async fn refused(ctx: &Context, o: &observe::Observed<'_>, error: &Error) -> Result<(), Error> {
    let Error::SecretRefused { message, .. } = error else {
        return Ok(());
    };
    let before = o.write_failure.as_ref().map(|f| f.message.clone());
    let failure = ctx.write_failures.failed(
        &o.keys.uid,
        o.app.metadata.generation,
        o.secret
            .as_ref()
            .and_then(|s| s.metadata.resource_version.as_deref()),
        format!(
            "the API server refused to write Secret {:?}: {message}",
            o.app.secret_name()
        ),
        tokio::time::Instant::now(),
    );
    let mut inputs = status::StatusInputs::new(o, o.record.as_ref());
    inputs.write_failure = Some(failure.message.clone());
    let desired = status::status(&inputs);
    write_status(ctx, o, &desired).await?;
    if before.as_deref() != Some(failure.message.as_str()) {
        let note = events::Note::warning(
            crate::api::conditions::app_reasons::SECRET_WRITE_FAILED,
            "WriteSecret",
            format!(
                "{}; retrying with a growing delay (next in {}s)",
                failure.message,
                failure.retry_in(tokio::time::Instant::now()).as_secs()
            ),
        );
        events::publish(ctx, o.app, note).await;
    }
    Ok(())
}

async fn write_status(
    ctx: &Context,
    o: &observe::Observed<'_>,
    desired: &crate::api::M2MAppStatus,
) -> Result<(), Error> {
    if o.app.status.as_ref() == Some(desired) {
        return Ok(());
    }
    let api: Api<M2MApp> = Api::namespaced(ctx.client.clone(), &o.keys.namespace);
    patch_status(&api, o.app, desired).await
}
