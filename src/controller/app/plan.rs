//! The pure half of the M2MApp reconcile: from what was [observed](super::observe::Observed),
//! every decision about the credentials (which step, rotation, revocation, record edits), as a
//! [`Plan`] that carries what apply needs. No I/O, no clock, no randomness.
//!
//! Write order (crash safety): the client record (hashes, in the operator's namespace) is always
//! written before the tenant Secret, so every secret a workload can ever read is accepted by the
//! token endpoint first. A secret that was hashed but never reached the Secret is harmless: no one
//! knows it, and the next reconcile replaces it.

use k8s_openapi::api::core::v1::Secret;

pub mod keyless;
mod step;

pub use self::step::{IssueCause, Plan, Promotion, RecordDraft, SecretState, Step, promote};
use super::observe::Observed;
use crate::{
    credentials::{
        generate,
        record::{AppKey, ClientRecord, SecretKind},
        secret::{self as tenant_secret, Endpoints, SecretContent},
    },
    rotation::{self, Cause},
    tenancy::Grant,
};

impl Promotion {
    /// The end of a rotation answering `rotate_request` (`None`: a scheduled one). The replaced
    /// secret keeps its grace period unless a new `m2m.dev/revoke-previous` value came with the
    /// rotation (`new_revoke`), or the revoke annotation holds the very value that asked for the
    /// rotation (the leak runbook's `rotate=X revoke-previous=X`, whichever arrived first).
    fn new(o: &Observed<'_>, rotate_request: Option<&str>, new_revoke: Option<String>) -> Self {
        let linked = rotate_request.is_some() && rotate_request == o.app.revoke_request();
        let revoke_replaced = rotate_request.is_some() && (new_revoke.is_some() || linked);
        Self {
            previous_expires_at: if revoke_replaced {
                None
            } else {
                rotation::previous_expires_at(o.now, o.app.grace_period())
            },
            handled_revoke: new_revoke,
            revokes_replaced: revoke_replaced,
        }
    }
}

/// Decides what to do with the credentials.
pub fn plan(o: &Observed<'_>) -> Plan {
    let Ok(grant) = &o.grant else {
        return hold(o);
    };
    if !o.app.uses_client_secret() {
        return keyless::plan(o, grant);
    }
    let record = o.record.as_ref();
    // A record without a current secret: the app had no ClientSecret method until now.
    if let Some(r) = record.filter(|r| r.current.is_none()) {
        if o.secret_state == SecretState::Foreign {
            return hold(o);
        }
        return issue(o, IssueCause::MethodEnabled, Some(r), grant);
    }
    match (o.secret_state, record) {
        (SecretState::Foreign, _) => hold(o),
        (SecretState::Missing, None) => issue(o, IssueCause::First, None, grant),
        (SecretState::Missing, Some(r)) => issue(o, IssueCause::SecretDeleted, Some(r), grant),
        (
            SecretState::Ours {
                readable: false, ..
            },
            r,
        ) => issue(o, IssueCause::SecretEdited, r, grant),
        (SecretState::Ours { readable: true, .. }, None) if o.secret_vouched => recover(o, grant),
        (SecretState::Ours { readable: true, .. }, None) => {
            issue(o, IssueCause::SecretUnvouched, None, grant)
        }
        (SecretState::Ours { matched, .. }, Some(r)) => match matched {
            Some(SecretKind::Current) => keep(o, r, grant),
            Some(SecretKind::Pending) => finish(o, r, grant),
            // The Secret holds a secret the record no longer treats as current: it was put back
            // or edited by hand; replace it.
            Some(SecretKind::Previous) | None => issue(o, IssueCause::SecretEdited, Some(r), grant),
        },
    }
}

/// No secret is written. A new `m2m.dev/revoke-previous` value still ends the grace period:
/// the token endpoint accepts the record's hashes whatever the app's condition.
fn hold(o: &Observed<'_>) -> Plan {
    let revoke = o.record.as_ref().and_then(|r| {
        rotation::new_request(o.app.revoke_request(), r.handled_revoke_request.as_deref())
    });
    let (record, revokes_previous) = match (o.record.clone(), revoke) {
        (Some(mut record), Some(value)) => {
            let had_previous = record.previous.take().is_some();
            record.handled_revoke_request = Some(value);
            (Some(record), had_previous)
        }
        _ => (None, false),
    };
    Plan {
        step: Step::Hold { record },
        revokes_previous,
        retires_unused: false,
    }
}

fn issue(o: &Observed<'_>, cause: IssueCause, old: Option<&ClientRecord>, grant: &Grant) -> Plan {
    if !o.may_write_secret() {
        return hold(o);
    }
    let draft = match old {
        // A new secret answers any rotation or revocation asked for until now.
        Some(old) => RecordDraft {
            client_id: old.client_id.clone(),
            app: old.app.clone(),
            // Enabling the method issues the first secret of a new revision.
            revision: old.revision + i64::from(cause == IssueCause::MethodEnabled),
            last_rotation_time: old.last_rotation_time,
            handled_rotate_request: o
                .app
                .rotate_request()
                .map(str::to_owned)
                .or(old.handled_rotate_request.clone()),
            handled_revoke_request: o
                .app
                .revoke_request()
                .map(str::to_owned)
                .or(old.handled_revoke_request.clone()),
            organization_uid: o.org_uid.clone(),
        },
        None => new_draft(o, 1),
    };
    Plan {
        step: Step::Issue {
            cause,
            draft,
            grant: grant.clone(),
        },
        revokes_previous: false,
        retires_unused: false,
    }
}

/// A record for an app that has none. Annotations present now ask for nothing: there is no
/// older secret yet.
fn new_draft(o: &Observed<'_>, revision: i64) -> RecordDraft {
    RecordDraft {
        client_id: generate::client_id(&o.keys.uid),
        app: AppKey {
            namespace: o.keys.namespace.clone(),
            name: o.keys.name.clone(),
            uid: o.keys.uid.clone(),
        },
        revision,
        last_rotation_time: o.now,
        handled_rotate_request: o.app.rotate_request().map(str::to_owned),
        handled_revoke_request: o.app.revoke_request().map(str::to_owned),
        organization_uid: o.org_uid.clone(),
    }
}

fn recover(o: &Observed<'_>, grant: &Grant) -> Plan {
    let revision = o
        .secret
        .as_ref()
        .and_then(|s| s.metadata.annotations.as_ref())
        .and_then(|a| a.get(crate::api::names::ANNOTATION_REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    // The secret is kept, so requests stay unanswered unless the status (which mirrors the
    // lost record) says they were handled: a rotation asked for before the loss still happens.
    let handled = o.app.status.as_ref().and_then(|s| s.rotation.as_ref());
    let draft = RecordDraft {
        handled_rotate_request: handled.and_then(|r| r.last_handled_rotate_request.clone()),
        handled_revoke_request: handled.and_then(|r| r.last_handled_revoke_request.clone()),
        ..new_draft(o, revision)
    };
    let sync = sync(o, &draft.client_id, draft.revision, grant);
    Plan {
        step: Step::RecoverRecord { draft, sync },
        revokes_previous: false,
        retires_unused: false,
    }
}

fn finish(o: &Observed<'_>, record: &ClientRecord, grant: &Grant) -> Plan {
    let rotate_request = record
        .pending
        .as_ref()
        .and_then(|p| p.rotate_request.clone());
    let revoke = rotation::new_request(
        o.app.revoke_request(),
        record.handled_revoke_request.as_deref(),
    );
    let promotion = Promotion::new(o, rotate_request.as_deref(), revoke.clone());
    let record = promote(record.clone(), &promotion);
    let revokes_previous = promotion.revokes_replaced;
    let sync = sync(o, &record.client_id, record.revision, grant);
    Plan {
        step: Step::FinishRotation { record, sync },
        revokes_previous,
        retires_unused: false,
    }
}

fn keep(o: &Observed<'_>, existing: &ClientRecord, grant: &Grant) -> Plan {
    if existing.organization_uid.is_some() && existing.organization_uid != o.org_uid {
        return issue(o, IssueCause::OrganizationReplaced, Some(existing), grant);
    }
    let mut record = existing.clone();
    // A record from before the field existed learns its Organization.
    record.organization_uid.clone_from(&o.org_uid);
    // A pending hash whose secret never reached the Secret: nobody knows that secret.
    record.pending = None;
    if record
        .previous
        .as_ref()
        .is_some_and(|p| p.expires_at <= o.now)
    {
        record.previous = None;
    }
    let mut decision = rotation::decide(
        &record,
        o.app.rotate_request(),
        o.app.revoke_request(),
        o.app.rotation_every(),
        o.now,
    );
    if !o.may_write_secret() {
        // The rotation waits for the Secret to be writable again; a revocation does not.
        decision.rotate = None;
    }
    if let Some(cause) = decision.rotate {
        // A revocation arriving with the rotation is answered by the rotation's last write.
        let rotate_request = match &cause {
            Cause::Requested(value) => Some(value.as_str()),
            Cause::Scheduled => None,
        };
        let promotion = Promotion::new(o, rotate_request, decision.revoke_previous);
        return Plan {
            step: Step::Rotate {
                cause,
                record,
                promotion,
                grant: grant.clone(),
            },
            revokes_previous: false,
            retires_unused: false,
        };
    }
    let mut revokes_previous = false;
    if let Some(value) = decision.revoke_previous {
        revokes_previous = record.previous.take().is_some();
        record.handled_revoke_request = Some(value);
    }
    let retires_unused = !revokes_previous
        && rotation::retire_unused(
            &record,
            o.retire_unused_after,
            o.previous_last_used(),
            o.now,
        ) == rotation::Retire::Now;
    if retires_unused {
        record.previous = None;
        revokes_previous = true;
    }
    let sync = sync(o, &record.client_id, record.revision, grant);
    Plan {
        step: Step::Keep {
            record: (record != *existing).then_some(record),
            sync,
        },
        revokes_previous,
        retires_unused,
    }
}

/// The Secret to write so its non-secret fields match, keeping its secret; `None` when it
/// already matches (or has no secret to keep).
fn sync(o: &Observed<'_>, client_id: &str, revision: i64, grant: &Grant) -> Option<Secret> {
    if !o.may_write_secret() {
        return None;
    }
    let existing = o.secret.as_ref()?;
    let plain = tenant_secret::client_secret_of(existing)?;
    let desired = tenant_secret::render(
        o.app,
        Some(&plain),
        &content(client_id, revision, grant, &o.endpoints),
    )?;
    (!tenant_secret::in_sync(existing, &desired)).then_some(desired)
}

/// What the Secret holds besides the secret.
pub fn content<'a>(
    client_id: &'a str,
    revision: i64,
    grant: &'a Grant,
    endpoints: &'a Endpoints,
) -> SecretContent<'a> {
    SecretContent {
        client_id,
        org_code: grant.org_code.as_deref(),
        scopes: &grant.scopes,
        revision,
        endpoints,
    }
}

#[cfg(test)]
pub(crate) mod tests;
