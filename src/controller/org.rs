//! The Organization reconcile: effective code, duplicate detection, bound-app count, `Ready`.

use std::{sync::Arc, time::Instant};

use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    runtime::{controller::Action, reflector::ObjectRef},
};

use super::{
    Context, Error,
    conditions::ready_reason,
    events::{self, Note},
    org_plan,
    status_patch::patch_status,
};
use crate::{
    api::{M2MApp, Organization, conditions::org_reasons},
    cache::Cache,
    tenancy,
};

const KIND: &str = "Organization";

pub async fn reconcile(org: Arc<Organization>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_org(&org, &ctx).await;
    super::observe(&ctx, KIND, org.as_ref(), started, &result);
    result
}

async fn reconcile_org(org: &Organization, ctx: &Context) -> Result<Action, Error> {
    let name = org.metadata.name.clone().ok_or(Error::MissingObjectKey)?;
    if org.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let sharing = ctx
        .cache
        .org_codes
        .sharing(org.effective_code(), &ctx.cache.organizations);
    let state = tenancy::org_state(org, sharing.iter().map(AsRef::as_ref));
    let apps = ctx
        .cache
        .apps
        .state()
        .iter()
        .filter(|a| a.metadata.deletion_timestamp.is_none())
        .filter(|a| {
            a.spec
                .organization_ref
                .as_ref()
                .is_some_and(|r| r.name == name)
        })
        .count();
    let now = Timestamp::now();
    let reported = org.metadata.uid.as_deref().and_then(|uid| {
        ctx.usage
            .with(|r| crate::usage::report::org_quota_exceeded(r.values(), uid))
    });
    let (quota, wake) = super::usage_status::quota(
        org.spec.quota.as_ref(),
        org.status.as_ref().and_then(|s| s.quota.as_ref()),
        reported,
        u64::try_from(now.as_second()).unwrap_or(0),
    );
    let desired = org_plan::status(
        org,
        &state,
        i32::try_from(apps).unwrap_or(i32::MAX),
        quota,
        now,
    );
    if org.status.as_ref() != Some(&desired) {
        let api: Api<Organization> = Api::all(ctx.client.clone());
        patch_status(&api, org, &desired).await?;
        let old_reason = org
            .status
            .as_ref()
            .and_then(|s| ready_reason(&s.conditions));
        let new_reason = ready_reason(&desired.conditions);
        if old_reason != new_reason
            && new_reason == Some(org_reasons::DUPLICATE_CODE)
            && let Some(condition) = desired.conditions.first()
        {
            let note = Note::warning(
                org_reasons::DUPLICATE_CODE,
                "CheckCode",
                condition.message.clone(),
            );
            events::publish(ctx, org, note).await;
        }
        let (shown, quota) = (
            org.status.as_ref().and_then(|s| s.quota.as_ref()),
            desired.quota.as_ref(),
        );
        if super::usage_status::newly_exceeded(shown, quota) {
            events::publish(ctx, org, super::usage_status::exceeded_note(quota)).await;
        }
    }
    let busy = desired.quota.as_ref().is_some_and(|q| q.exceeded_recently);
    let due = [wake, busy.then_some(super::usage_status::REFRESH)];
    Ok(super::wake::after(due, ctx.config.resync))
}

/// Organizations whose duplicate state a change of `org` may flip: those sharing its code.
pub fn same_code(cache: &Cache, org: &Organization) -> Vec<ObjectRef<Organization>> {
    cache
        .org_codes
        .sharing(org.effective_code(), &cache.organizations)
        .iter()
        .filter(|o| o.name_any() != org.name_any())
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// The Organization whose app count a change of `app` may change.
pub fn org_of_app(app: &M2MApp) -> Option<ObjectRef<Organization>> {
    app.spec
        .organization_ref
        .as_ref()
        .map(|r| ObjectRef::new(&r.name))
}
