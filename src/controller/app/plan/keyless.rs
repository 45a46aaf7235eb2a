//! The plan of an app without the `ClientSecret` method (keyless: it authenticates with a
//! ServiceAccount token or its own key). Its record holds no current hash and its Secret no
//! `client_secret`; a secret issued while the app still had the method is retired like a
//! rotated-out one: accepted for `rotation.gracePeriod` (unless revoked), then refused.

use k8s_openapi::api::core::v1::Secret;

use super::{Plan, SecretState, Step, content, new_draft};
use crate::{
    controller::app::observe::Observed,
    credentials::{
        record::{ClientRecord, Previous, SecretKind},
        secret as tenant_secret,
    },
    rotation,
    tenancy::Grant,
};

/// What a keyless plan changes about the app's credentials (for the Event and the metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeylessChange {
    /// The app never had credentials: a record without a secret is created.
    Issued,
    /// The app had a client secret: it is retired (grace period), the Secret loses it.
    SecretRetired,
    /// Nothing new (the record or the Secret may still be brought in line).
    Kept,
}

/// Decides for an app without the `ClientSecret` method that may have credentials.
pub fn plan(o: &Observed<'_>, grant: &Grant) -> Plan {
    if o.secret_state == SecretState::Foreign {
        return super::hold(o);
    }
    let (change, record, revokes_previous) = match &o.record {
        None => {
            let record = new_draft(o, 1).without_secret();
            (KeylessChange::Issued, Some(record), false)
        }
        Some(existing) => {
            let (record, retired, revoked) = update(o, existing);
            let change = if retired {
                KeylessChange::SecretRetired
            } else {
                KeylessChange::Kept
            };
            (change, (record != *existing).then_some(record), revoked)
        }
    };
    let revision = record
        .as_ref()
        .or(o.record.as_ref())
        .map_or(1, |r| r.revision);
    let client_id = record
        .as_ref()
        .or(o.record.as_ref())
        .map(|r| r.client_id.clone())
        .unwrap_or_default();
    let secret = desired_secret(o, &client_id, revision, grant);
    Plan {
        step: Step::Keyless {
            change,
            record,
            secret,
        },
        revokes_previous,
        // The secret retired by a switch to keyless keeps its whole grace period; the
        // unused-retirement policy applies to rotations.
        retires_unused: false,
    }
}

/// The record brought in line: a secret still current (or pending, if that is what the Secret
/// holds) is retired with the grace period, an expired previous one dropped, requests handled.
/// Returns the record, whether a secret was retired now, whether a revocation ended one.
fn update(o: &Observed<'_>, existing: &ClientRecord) -> (ClientRecord, bool, bool) {
    let mut record = existing.clone();
    // Secrets issued for an Organization that was replaced never work for the new one.
    if record.organization_uid.is_some() && record.organization_uid != o.org_uid {
        record.previous = None;
    }
    record.organization_uid.clone_from(&o.org_uid);
    let in_secret = match o.secret_state {
        SecretState::Ours {
            matched: Some(SecretKind::Pending),
            ..
        } => record.pending.as_ref().map(|p| p.hash.clone()),
        _ => None,
    };
    let retiring = in_secret.or(record.current.clone());
    record.pending = None;
    let retired = record.current.take().is_some();
    if let Some(hash) = retiring.filter(|_| retired) {
        record.previous = rotation::previous_expires_at(o.now, o.app.grace_period())
            .map(|expires_at| Box::new(Previous { hash, expires_at }));
        record.revision += 1;
        record.last_rotation_time = o.now;
    }
    if record
        .previous
        .as_ref()
        .is_some_and(|p| p.expires_at <= o.now)
    {
        record.previous = None;
    }
    let mut revoked = false;
    if let Some(value) = rotation::new_request(
        o.app.revoke_request(),
        record.handled_revoke_request.as_deref(),
    ) {
        revoked = record.previous.take().is_some();
        record.handled_revoke_request = Some(value);
    }
    // Nothing to rotate: a rotation request is answered by there being no secret.
    if let Some(value) = rotation::new_request(
        o.app.rotate_request(),
        record.handled_rotate_request.as_deref(),
    ) {
        record.handled_rotate_request = Some(value);
    }
    (record, retired, revoked)
}

/// The Secret to write (no `client_secret`), when it is missing, out of line or still holds a
/// secret; `None` when it matches or may not be written now.
fn desired_secret(
    o: &Observed<'_>,
    client_id: &str,
    revision: i64,
    grant: &Grant,
) -> Option<Secret> {
    if !o.may_write_secret() {
        return None;
    }
    let desired = tenant_secret::render(
        o.app,
        None,
        &content(client_id, revision, grant, &o.endpoints),
    )?;
    match &o.secret {
        None => Some(desired),
        Some(existing) => {
            let holds_secret = has_client_secret(existing);
            (holds_secret || !tenant_secret::in_sync(existing, &desired)).then_some(desired)
        }
    }
}

/// Whether a Secret has a `client_secret` key (readable or not).
pub fn has_client_secret(secret: &Secret) -> bool {
    secret
        .data
        .as_ref()
        .is_some_and(|d| d.contains_key(crate::api::names::secret_keys::CLIENT_SECRET))
}
