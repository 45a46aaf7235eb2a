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

use std::{sync::Arc, time::Instant};

use k8s_openapi::jiff::Timestamp;
use kube::{Api, runtime::controller::Action};

use super::{Context, Error, events, status_patch::patch_status};
use crate::api::M2MApp;

const KIND: &str = "M2MApp";

pub async fn reconcile(app: Arc<M2MApp>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_app(&app, &ctx).await;
    super::observe(&ctx, KIND, started, &result);
    result
}

async fn reconcile_app(app: &M2MApp, ctx: &Context) -> Result<Action, Error> {
    let keys = observe::AppKeys::of(app).ok_or(Error::MissingObjectKey)?;
    if app.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let observed = observe::observe(ctx, app, keys, Timestamp::now()).await?;
    let plan = plan::plan(&observed);
    let applied = apply::apply(ctx, &observed, plan).await?;

    let mut inputs = status::StatusInputs::new(&observed, applied.record.as_ref());
    // The Secret version verified last (this reconcile's writes included), for the next process.
    inputs.verified_secret = ctx.verified.get(&observed.keys.uid).map(|v| v.marker());
    let desired = status::status(&inputs);
    if app.status.as_ref() != Some(&desired) {
        let api: Api<M2MApp> = Api::namespaced(ctx.client.clone(), &observed.keys.namespace);
        patch_status(&api, &observed.keys.name, &desired).await?;
    }
    for note in applied
        .notes
        .into_iter()
        .chain(status::refusal_note(app, &desired))
    {
        events::publish(ctx, app, note).await;
    }
    Ok(Action::requeue(status::wake_after(
        app,
        applied.record.as_ref(),
        observed.now,
        ctx.config.resync,
    )))
}
