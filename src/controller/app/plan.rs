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
        }
    }
}

/// How a rotation ends (step 3): the previous secret's grace period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    /// When the replaced secret stops working (`None`: at once).
    pub previous_expires_at: Option<Timestamp>,
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
        ..record
    }
}

/// What to do with the credentials.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Touch nothing (refused before credentials may exist, or the Secret is foreign).
    Hold,
    /// Generate a new secret: the record (from `draft`) first, then the Secret.
    Issue {
        cause: IssueCause,
        draft: RecordDraft,
        grant: Grant,
    },
    /// The record was lost but the Secret is intact: re-hash the Secret's secret into a new
    /// record (from `draft`), then bring the Secret's other fields in line (`sync`). No secret
    /// changes.
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
    let hold = Plan {
        step: Step::Hold,
        revokes_previous: false,
    };
    let Ok(grant) = &o.grant else {
        return hold;
    };
    let record = o.record.as_ref();
    match (o.secret_state, record) {
        (SecretState::Foreign, _) => hold,
        (SecretState::Missing, None) => issue(o, IssueCause::First, None, grant),
        (SecretState::Missing, Some(r)) => issue(o, IssueCause::SecretDeleted, Some(r), grant),
        (
            SecretState::Ours {
                readable: false, ..
            },
            r,
        ) => issue(o, IssueCause::SecretEdited, r, grant),
        (SecretState::Ours { readable: true, .. }, None) => recover(o, grant),
        (SecretState::Ours { matched, .. }, Some(r)) => match matched {
            Some(SecretKind::Current) => keep(o, r, grant),
            Some(SecretKind::Pending) => finish(o, r, grant),
            // The Secret holds a secret the record no longer treats as current: it was put back
            // or edited by hand; replace it.
            Some(SecretKind::Previous) | None => issue(o, IssueCause::SecretEdited, Some(r), grant),
        },
    }
}

fn issue(o: &Observed<'_>, cause: IssueCause, old: Option<&ClientRecord>, grant: &Grant) -> Plan {
    let draft = match old {
        Some(old) => RecordDraft {
            client_id: old.client_id.clone(),
            app: old.app.clone(),
            revision: old.revision,
            last_rotation_time: old.last_rotation_time,
            handled_rotate_request: old.handled_rotate_request.clone(),
            handled_revoke_request: old.handled_revoke_request.clone(),
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
    }
}

fn recover(o: &Observed<'_>, grant: &Grant) -> Plan {
    let revision = o
        .secret
        .as_ref()
        .and_then(|s| s.metadata.annotations.as_ref())
        .and_then(|a| a.get(crate::api::keys::ANNOTATION_REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let draft = new_draft(o, revision);
    let sync = sync(o, &draft.client_id, draft.revision, grant);
    Plan {
        step: Step::RecoverRecord { draft, sync },
        revokes_previous: false,
    }
}

fn finish(o: &Observed<'_>, record: &ClientRecord, grant: &Grant) -> Plan {
    let promotion = Promotion {
        previous_expires_at: rotation::previous_expires_at(o.now, o.app.grace_period()),
    };
    let record = promote(record.clone(), &promotion);
    let sync = sync(o, &record.client_id, record.revision, grant);
    Plan {
        step: Step::FinishRotation { record, sync },
        revokes_previous: false,
    }
}

fn keep(o: &Observed<'_>, existing: &ClientRecord, grant: &Grant) -> Plan {
    let mut record = existing.clone();
    // A pending hash whose secret never reached the Secret: nobody knows that secret.
    record.pending = None;
    if record
        .previous
        .as_ref()
        .is_some_and(|p| p.expires_at <= o.now)
    {
        record.previous = None;
    }
    let decision = rotation::decide(
        &record,
        o.app.rotate_request(),
        o.app.revoke_request(),
        o.app.rotation_every(),
        o.now,
    );
    let mut revokes_previous = false;
    if let Some(value) = decision.revoke_previous {
        revokes_previous = record.previous.take().is_some();
        record.handled_revoke_request = Some(value);
    }
    if let Some(cause) = decision.rotate {
        let promotion = Promotion {
            previous_expires_at: rotation::previous_expires_at(o.now, o.app.grace_period()),
        };
        return Plan {
            step: Step::Rotate {
                cause,
                record,
                promotion,
                grant: grant.clone(),
            },
            revokes_previous,
        };
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
