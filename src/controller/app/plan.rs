//! The pure half of the M2MApp reconcile: from what was [observed](super::observe::Observed),
//! every decision about the credentials (which step, rotation, revocation, record edits), as a
//! [`Plan`] that carries what apply needs. No I/O, no clock, no randomness.
//!
//! Write order (crash safety): the client record (hashes, in the operator's namespace) is always
//! written before the tenant Secret, so every secret a workload can ever read is accepted by the
//! token endpoint first. A secret that was hashed but never reached the Secret is harmless: no one
//! knows it, and the next reconcile replaces it.

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};

use super::observe::Observed;
use crate::{
    controller::events::Note,
    credentials::{
        generate,
        hash::PhcHash,
        record::{AppKey, ClientRecord, Previous, SecretKind},
        secret::{self as tenant_secret, Endpoints, SecretContent},
    },
    rotation::{self, Cause},
    tenancy::Grant,
};

/// What the target Secret is, as far as the plan cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretState {
    /// No Secret of that name.
    Missing,
    /// A Secret of that name that this app does not control.
    Foreign,
    /// The app's Secret; `matched` says which recorded hash its `client_secret` matches (`None`:
    /// none, or no record to check against); `readable` is false when it has no usable
    /// `client_secret`.
    Ours {
        matched: Option<SecretKind>,
        readable: bool,
    },
}

/// Why a new secret is issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueCause {
    /// The app never had credentials.
    First,
    /// Its Secret was deleted.
    SecretDeleted,
    /// Its Secret's `client_secret` no longer matches (edited by hand, or removed).
    SecretEdited,
    /// Its client record is gone and its Secret is not one the operator wrote: the secret in
    /// it may be anyone's choice, so it never becomes the app's credentials.
    SecretUnvouched,
    /// Its Organization was deleted and one of the same name created (another UID, perhaps
    /// another tenant): secrets issued for the old one must not work for the new one.
    OrganizationReplaced,
}

impl IssueCause {
    /// The metric action and the Event of an issue for this cause.
    pub fn note(self, secret_name: &str) -> (&'static str, Note) {
        const ACTION: &str = "IssueCredentials";
        match self {
            IssueCause::First => (
                "issued",
                Note::normal(
                    "CredentialsIssued",
                    ACTION,
                    format!("issued client credentials into Secret {secret_name:?}"),
                ),
            ),
            IssueCause::SecretDeleted => (
                "repaired",
                Note::warning(
                    "SecretRepaired",
                    ACTION,
                    format!(
                        "Secret {secret_name:?} was deleted; issued a new client secret (the old one no longer works)"
                    ),
                ),
            ),
            IssueCause::SecretEdited => (
                "repaired",
                Note::warning(
                    "SecretRepaired",
                    ACTION,
                    format!(
                        "client_secret in Secret {secret_name:?} was changed outside the operator; issued a new client secret"
                    ),
                ),
            ),
            IssueCause::SecretUnvouched => (
                "repaired",
                Note::warning(
                    "SecretRepaired",
                    ACTION,
                    format!(
                        "Secret {secret_name:?} holds a client_secret the operator did not issue \
                         (no client record, and not a Secret version the operator wrote); \
                         issued a new client secret"
                    ),
                ),
            ),
            IssueCause::OrganizationReplaced => (
                "repaired",
                Note::warning(
                    "SecretRepaired",
                    ACTION,
                    "the Organization was deleted and created again (a new UID); the old \
                     client secret does not work for it; issued a new client secret"
                        .to_owned(),
                ),
            ),
        }
    }
}

/// A client record still without its `current` hash (apply hashes the new secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordDraft {
    pub client_id: String,
    pub app: AppKey,
    pub revision: i64,
    pub last_rotation_time: Timestamp,
    pub handled_rotate_request: Option<String>,
    pub handled_revoke_request: Option<String>,
    pub organization_uid: Option<String>,
}

impl RecordDraft {
    /// The record with `current` as its only hash.
    pub fn with_current(self, current: PhcHash) -> ClientRecord {
        ClientRecord {
            client_id: self.client_id,
            app: self.app,
            current,
            pending: None,
            previous: None,
            revision: self.revision,
            last_rotation_time: self.last_rotation_time,
            handled_rotate_request: self.handled_rotate_request,
            handled_revoke_request: self.handled_revoke_request,
            organization_uid: self.organization_uid,
        }
    }
}

/// How a rotation ends (step 3): the previous secret's grace period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    /// When the replaced secret stops working (`None`: at once).
    pub previous_expires_at: Option<Timestamp>,
    /// A `m2m.dev/revoke-previous` value this rotation answers. It is recorded here, in the
    /// write that ends the rotation, not before: a rotation interrupted earlier must still
    /// revoke the secret it replaces when it is finished or restarted.
    pub handled_revoke: Option<String>,
    /// The replaced secret is refused at once because a revocation asked for it (not because
    /// the grace period is `0s`).
    pub revokes_replaced: bool,
}

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

/// The record after its pending secret became current: the old current secret is kept as
/// previous per `promotion`, the revision goes up, the request the rotation answered is handled.
pub fn promote(record: ClientRecord, promotion: &Promotion) -> ClientRecord {
    let Some(pending) = record.pending.clone() else {
        return record;
    };
    ClientRecord {
        previous: promotion.previous_expires_at.map(|expires_at| Previous {
            hash: record.current.clone(),
            expires_at,
        }),
        current: pending.hash,
        pending: None,
        revision: record.revision + 1,
        last_rotation_time: pending.started_at,
        handled_rotate_request: pending
            .rotate_request
            .or(record.handled_rotate_request.clone()),
        handled_revoke_request: promotion
            .handled_revoke
            .clone()
            .or(record.handled_revoke_request.clone()),
        ..record
    }
}

/// What to do with the credentials.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Touch no secret (refused before credentials may exist, or the Secret is foreign);
    /// write `record` if a revocation changed it (a revocation always takes effect).
    Hold { record: Option<ClientRecord> },
    /// Generate a new secret: the record (from `draft`) first, then the Secret.
    Issue {
        cause: IssueCause,
        draft: RecordDraft,
        grant: Grant,
    },
    /// The record was lost but the Secret is intact and one the operator wrote: re-hash the
    /// Secret's secret into a new record (from `draft`), then bring the Secret's other fields in
    /// line (`sync`). No secret changes.
    RecoverRecord {
        draft: RecordDraft,
        sync: Option<Secret>,
    },
    /// The Secret already holds the pending secret (a rotation was interrupted after writing
    /// it): write `record` (the pending secret made current), then `sync` the Secret.
    FinishRotation {
        record: ClientRecord,
        sync: Option<Secret>,
    },
    /// Rotate: `record` (cleaned) gets a new pending secret, the Secret gets the new secret, and
    /// the record is [`promote`]d.
    Rotate {
        cause: Cause,
        record: ClientRecord,
        promotion: Promotion,
        grant: Grant,
    },
    /// Keep the secret: write `record` if it changed, then `sync` the Secret.
    Keep {
        record: Option<ClientRecord>,
        sync: Option<Secret>,
    },
}

/// The decisions of one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub step: Step,
    /// This plan ends a running grace period early (a `m2m.dev/revoke-previous` request).
    pub revokes_previous: bool,
}

/// Decides what to do with the credentials.
pub fn plan(o: &Observed<'_>) -> Plan {
    let Ok(grant) = &o.grant else {
        return hold(o);
    };
    let record = o.record.as_ref();
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
            revision: old.revision,
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
        };
    }
    let mut revokes_previous = false;
    if let Some(value) = decision.revoke_previous {
        revokes_previous = record.previous.take().is_some();
        record.handled_revoke_request = Some(value);
    }
    let sync = sync(o, &record.client_id, record.revision, grant);
    Plan {
        step: Step::Keep {
            record: (record != *existing).then_some(record),
            sync,
        },
        revokes_previous,
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
        &plain,
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
