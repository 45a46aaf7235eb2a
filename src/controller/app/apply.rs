//! Apply: the writes a [`Plan`] calls for, in its order (the record before the Secret), and the
//! Events that say what was done. Nothing here decides.

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};

use super::{
    observe::Observed,
    plan::{self, Plan, Promotion, RecordDraft, Step},
};
use crate::{
    api::names::FIELD_MANAGER,
    controller::{Context, Error, events::Note},
    credentials::{
        generate::{self, ClientSecret},
        hash::{self, PhcHash},
        record::{ClientRecord, Pending, SecretKind},
        secret as tenant_secret,
    },
    metrics::EventLabels,
    rotation::Cause,
    tenancy::Grant,
};

mod keyless;

use self::keyless::keyless_note;

/// What apply did.
pub struct Applied {
    /// The client record after the writes (`None`: the app has none).
    pub record: Option<ClientRecord>,
    /// Events to publish about the app.
    pub notes: Vec<Note>,
    /// When the client record was written: the versions of it this reconcile read or wrote
    /// before its last write (the cache must show another before the status is written).
    pub record_superseded: Option<Vec<String>>,
}

/// Carries out `plan`.
pub async fn apply(ctx: &Context, o: &Observed<'_>, plan: Plan) -> Result<Applied, Error> {
    let mut w = Writes::new(ctx, o);
    let mut notes = Vec::new();
    if plan.retires_unused {
        notes.push(Note::normal(
            "PreviousSecretRetired",
            "RetirePrevious",
            format!(
                "the previous client secret was unused for {}s on every replica; it is retired before its grace period ended (spec.rotation.retirePreviousWhenUnusedFor)",
                o.retire_unused_after.map_or(0, |d| d.as_secs())
            ),
        ));
    } else if plan.revokes_previous {
        notes.push(Note::warning(
            "PreviousSecretRevoked",
            "RevokePrevious",
            "the previous client secret was revoked before its grace period ended".to_owned(),
        ));
    }
    let record = match plan.step {
        Step::Hold { record: None } => o.record.clone(),
        Step::Hold {
            record: Some(record),
        } => {
            w.write_record(&record).await?;
            Some(record)
        }
        Step::Issue {
            cause,
            draft,
            grant,
        } => {
            let record = w.issue(draft, &grant).await?;
            let (action, note) = cause.note(&o.app.secret_name());
            w.count(action);
            notes.push(note);
            Some(record)
        }
        Step::RecoverRecord { draft, sync } => {
            let record = w.recover(draft, sync.as_ref(), &mut notes).await?;
            w.count("recovered");
            notes.push(Note::warning(
                "RecordRecovered",
                "RecoverRecord",
                "the client record was missing; rebuilt it from the Secret (the secret is unchanged)"
                    .to_owned(),
            ));
            Some(record)
        }
        Step::FinishRotation { record, sync } => {
            w.write_record(&record).await?;
            w.sync(sync.as_ref(), &mut notes).await?;
            Some(record)
        }
        Step::Rotate {
            cause,
            record,
            promotion,
            grant,
        } => {
            let record = w.rotate(record, &cause, &promotion, &grant).await?;
            w.count("rotated");
            notes.push(rotated_note(o, &record, &cause));
            Some(record)
        }
        Step::Keep { record, sync } => {
            if let Some(record) = &record {
                w.write_record(record).await?;
            }
            w.sync(sync.as_ref(), &mut notes).await?;
            record.or_else(|| o.record.clone())
        }
        Step::Keyless {
            change,
            record,
            secret,
        } => {
            if let Some(record) = &record {
                w.write_record(record).await?;
            }
            let record = record.or_else(|| o.record.clone());
            if let Some(secret) = secret {
                w.write_keyless_secret(secret).await?;
            }
            if let Some((action, note)) = keyless_note(o, change, record.as_ref()) {
                w.count(action);
                notes.push(note);
            }
            record
        }
    };
    Ok(Applied {
        record,
        notes,
        record_superseded: w.wrote_record.then_some(w.superseded),
    })
}

fn rotated_note(o: &Observed<'_>, record: &ClientRecord, cause: &Cause) -> Note {
    let why = match cause {
        Cause::Requested(value) => format!("m2m.dev/rotate={value:?}"),
        Cause::Scheduled => "spec.rotation.every".to_owned(),
    };
    let until = record
        .previous
        .as_ref()
        .map_or("is revoked now".to_owned(), |p| {
            format!("works until {}", p.expires_at)
        });
    Note::normal(
        "SecretRotated",
        "RotateSecret",
        format!(
            "rotated the client secret in Secret {:?} to revision {} ({why}); the previous secret {until}",
            o.app.secret_name(),
            record.revision
        ),
    )
}

/// The writes of one reconcile, each guarded by the resourceVersion it last read or wrote.
struct Writes<'a> {
    ctx: &'a Context,
    o: &'a Observed<'a>,
    records: Api<Secret>,
    secrets: Api<Secret>,
    /// The resourceVersion of the record Secret as last read or written (the guard of the next
    /// record write; `None`: there is none, it is created).
    record_version: Option<String>,
    /// The app's Secret as last read or written.
    secret: Option<Secret>,
    /// Whether a record write succeeded, and the record versions each write replaced.
    wrote_record: bool,
    superseded: Vec<String>,
}

impl<'a> Writes<'a> {
    fn new(ctx: &'a Context, o: &'a Observed<'a>) -> Self {
        Self {
            ctx,
            o,
            records: Api::namespaced(ctx.client.clone(), &ctx.config.operator_namespace),
            secrets: Api::namespaced(ctx.client.clone(), &o.keys.namespace),
            record_version: o.record_version.clone(),
            secret: o.secret.clone(),
            wrote_record: false,
            superseded: Vec::new(),
        }
    }

    fn count(&self, action: &'static str) {
        self.ctx
            .metrics
            .credentials
            .get_or_create(&EventLabels { action })
            .inc();
    }

    async fn hash(&self, secret: &ClientSecret) -> Result<PhcHash, Error> {
        tracing::debug!(
            namespace = %self.o.keys.namespace,
            name = %self.o.keys.name,
            "hashing a secret with argon2id"
        );
        let secret = secret.clone();
        self.ctx
            .hashing
            .run("hash", move || hash::hash(&secret))
            .await?
            .map_err(Error::from)
    }

    /// A new secret: record first, then the Secret.
    async fn issue(&mut self, draft: RecordDraft, grant: &Grant) -> Result<ClientRecord, Error> {
        let secret = generate::client_secret()?;
        let hash = self.hash(&secret).await?;
        let record = draft.with_current(hash.clone());
        self.write_record(&record).await?;
        let written = self.write_secret(&secret, &record, grant).await?;
        // This controller wrote that secret: the next reconcile need not argon2-verify it.
        self.ctx
            .verified
            .remember(&self.o.keys.uid, &written, &hash, SecretKind::Current);
        Ok(record)
    }

    /// Rebuilds a lost record from the intact Secret.
    async fn recover(
        &mut self,
        draft: RecordDraft,
        sync: Option<&Secret>,
        notes: &mut Vec<Note>,
    ) -> Result<ClientRecord, Error> {
        let plain = self
            .o
            .secret
            .as_ref()
            .and_then(tenant_secret::client_secret_of)
            .ok_or(Error::Inconsistent(MISSING))?;
        let record = draft.with_current(self.hash(&plain).await?);
        self.write_record(&record).await?;
        self.sync(sync, notes).await?;
        Ok(record)
    }

    /// Rotates the secret, crash-safe: (1) the new secret's hash goes into the record as
    /// pending (accepted from now on, the current one still accepted), (2) the Secret gets the
    /// new secret and revision, (3) the record makes it current and keeps the old one as
    /// previous until the grace period ends. Dying after (1) leaves the old secret in place and
    /// the request unhandled, so the next reconcile starts over; dying after (2) is finished by
    /// the next reconcile ([`Step::FinishRotation`]). No secret a workload may hold is ever
    /// refused before its grace period ends.
    async fn rotate(
        &mut self,
        mut record: ClientRecord,
        cause: &Cause,
        promotion: &Promotion,
        grant: &Grant,
    ) -> Result<ClientRecord, Error> {
        let new_secret = generate::client_secret()?;
        record.pending = Some(Box::new(Pending {
            hash: self.hash(&new_secret).await?,
            rotate_request: match cause {
                Cause::Requested(value) => Some(value.clone()),
                Cause::Scheduled => None,
            },
            started_at: self.o.now,
        }));
        self.write_record(&record).await?;
        let next = ClientRecord {
            revision: record.revision + 1,
            ..record.clone()
        };
        let written_secret = self.write_secret(&new_secret, &next, grant).await?;
        let record = plan::promote(record, promotion);
        self.write_record(&record).await?;
        if let Some(current) = &record.current {
            self.ctx.verified.remember(
                &self.o.keys.uid,
                &written_secret,
                current,
                SecretKind::Current,
            );
        }
        Ok(record)
    }

    /// Creates the record, or replaces it guarded by the resourceVersion last read or written.
    async fn write_record(&mut self, record: &ClientRecord) -> Result<(), Error> {
        let mut desired = record
            .to_secret(&self.ctx.config.operator_namespace)
            .map_err(Error::SerializeRecord)?;
        let name = desired.name_any();
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        let result = match &self.record_version {
            None => self.records.create(&params, &desired).await,
            Some(version) => {
                desired.metadata.resource_version = Some(version.clone());
                self.records.replace(&name, &params, &desired).await
            }
        };
        let written = result.map_err(|source| Error::WriteRecord { name, source })?;
        if let Some(version) = self.record_version.take() {
            self.superseded.push(version);
        }
        self.wrote_record = true;
        self.record_version = Some(written.metadata.resource_version.unwrap_or_default());
        Ok(())
    }

    /// Writes the Secret with `secret`: created when missing (never over a foreign one),
    /// otherwise applied guarded by the resourceVersion last read or written.
    async fn write_secret(
        &mut self,
        secret: &ClientSecret,
        record: &ClientRecord,
        grant: &Grant,
    ) -> Result<Secret, Error> {
        let content = plan::content(&record.client_id, record.revision, grant, &self.o.endpoints);
        let desired = tenant_secret::render(self.o.app, Some(secret), &content)
            .ok_or(Error::MissingObjectKey)?;
        self.put_secret(desired).await
    }

    async fn put_secret(&mut self, mut desired: Secret) -> Result<Secret, Error> {
        let name = desired.name_any();
        let result = match &self.secret {
            None => {
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PostParams::default()
                };
                self.secrets.create(&params, &desired).await
            }
            Some(existing) => {
                desired.metadata.resource_version = existing.metadata.resource_version.clone();
                self.secrets
                    .patch(
                        &name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&desired),
                    )
                    .await
            }
        };
        let namespace = self.o.keys.namespace.clone();
        let written = result.map_err(|source| {
            // A conflict is another writer; no answer at all (the API server restarting, a
            // connection reset) is no refusal: both retry with the usual backoff, without a
            // refusal streak that holds back new secrets.
            let answered = matches!(source, kube::Error::Api(_));
            if crate::controller::error::is_conflict(&source) || !answered {
                return Error::WriteSecret {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source,
                };
            }
            let secret = desired
                .data
                .as_ref()
                .and_then(|d| d.get(crate::api::names::secret_keys::CLIENT_SECRET))
                .map(|v| String::from_utf8_lossy(&v.0).into_owned());
            Error::SecretRefused {
                namespace: namespace.clone(),
                name: name.clone(),
                message: refusal_message(&source, secret.as_deref()),
            }
        })?;
        self.secret = Some(written.clone());
        Ok(written)
    }

    /// Writes `desired` (the Secret with its secret kept, other fields brought in line), if the
    /// plan found it out of line.
    async fn sync(&mut self, desired: Option<&Secret>, notes: &mut Vec<Note>) -> Result<(), Error> {
        let Some(desired) = desired else {
            return Ok(());
        };
        let before = self.secret.clone();
        let written = self.put_secret(desired.clone()).await?;
        // The same secret in a new version of the Secret: what was verified of the old version
        // holds for it.
        if let Some(verified) = self
            .ctx
            .verified
            .get(&self.o.keys.uid)
            .filter(|v| before.as_ref().is_some_and(|b| v.is_of(b)))
        {
            self.ctx
                .verified
                .carry_to(&self.o.keys.uid, &verified, &written);
        }
        notes.push(Note::normal(
            "SecretUpdated",
            "SyncSecret",
            format!(
                "updated Secret {:?} to match the M2MApp (the client secret is unchanged)",
                self.o.app.secret_name()
            ),
        ));
        Ok(())
    }
}

const MISSING: &str = "the plan expected an object that is not there";

/// Longest API server message kept in a condition or Event.
const MAX_MESSAGE: usize = 512;

/// What the API server said about a refused write, without `secret` (plain or base64, should
/// an admission webhook or policy have echoed the object) and at most [`MAX_MESSAGE`] bytes.
pub fn refusal_message(error: &kube::Error, secret: Option<&str>) -> String {
    let mut text = match error {
        kube::Error::Api(status) => format!(
            "{} (HTTP {} {})",
            status.message.trim(),
            status.code,
            status.reason
        ),
        other => other.to_string(),
    };
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        use base64::Engine;
        for form in [
            secret.to_owned(),
            base64::engine::general_purpose::STANDARD.encode(secret),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        ] {
            text = text.replace(&form, "<redacted>");
        }
    }
    if text.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}
