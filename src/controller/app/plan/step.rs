//! The values the plan decides: what the Secret is ([`SecretState`]), what to do ([`Step`],
//! with the records and Secrets apply writes), why a new secret is issued ([`IssueCause`]) and
//! how a rotation ends ([`Promotion`], [`promote`]).

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};

use crate::{
    controller::events::Note,
    credentials::{
        hash::PhcHash,
        record::{AppKey, ClientRecord, Previous, SecretKind},
    },
    rotation::Cause,
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
    /// `spec.clientAuthentication` accepts `ClientSecret` again (or for the first time) on an
    /// app that had no client secret.
    MethodEnabled,
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
            IssueCause::MethodEnabled => (
                "issued",
                Note::normal(
                    "CredentialsIssued",
                    ACTION,
                    format!(
                        "spec.clientAuthentication accepts ClientSecret: issued a client secret \
                         into Secret {secret_name:?}"
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
    pub organization_uid: Option<String>,
}

impl RecordDraft {
    /// The record with `current` as its only hash.
    pub fn with_current(self, current: PhcHash) -> ClientRecord {
        ClientRecord {
            current: Some(current),
            ..self.without_secret()
        }
    }

    /// The record of an app without a client secret: no hash at all.
    pub fn without_secret(self) -> ClientRecord {
        ClientRecord {
            client_id: self.client_id,
            app: self.app,
            current: None,
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

/// The record after its pending secret became current: the old current secret is kept as
/// previous per `promotion`, the revision goes up, the request the rotation answered is handled.
pub fn promote(record: ClientRecord, promotion: &Promotion) -> ClientRecord {
    let Some(pending) = record.pending.clone() else {
        return record;
    };
    ClientRecord {
        previous: promotion
            .previous_expires_at
            .zip(record.current.clone())
            .map(|(expires_at, hash)| Box::new(Previous { hash, expires_at })),
        current: Some(pending.hash),
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
    /// The app has no client secret: write `record` if it changed (first, so a retired
    /// secret is accepted as previous before it leaves the Secret), then `secret`, the Secret
    /// without `client_secret` (removing one it still holds).
    Keyless {
        change: super::keyless::KeylessChange,
        record: Option<ClientRecord>,
        secret: Option<Secret>,
    },
}

/// The decisions of one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub step: Step,
    /// This plan ends a running grace period early (a `m2m.dev/revoke-previous` request).
    pub revokes_previous: bool,
    /// This plan ends a running grace period early because the previous secret was unused for
    /// `spec.rotation.retirePreviousWhenUnusedFor` (then `revokes_previous` is true too).
    pub retires_unused: bool,
}
