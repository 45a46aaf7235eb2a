//! The M2MApp reconcile: reads (cache, the app's Secret and client record), the pure plan of
//! [`super::app_plan`], the writes it calls for (record first, then Secret), then the status.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use k8s_openapi::{
    api::core::v1::{Namespace, Secret},
    jiff::Timestamp,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    core::PartialObjectMeta,
    runtime::{
        controller::Action,
        events::{Event, EventType},
        reflector::{ObjectRef, Store},
    },
};

use super::{
    Context, Error,
    app_plan::{self, CredentialStep, IssueCause, SecretState, StatusInputs},
    conditions::ready_reason,
};
use crate::{
    api::{
        M2MApp,
        conditions::app_reasons,
        keys::{ANNOTATION_REVISION, ANNOTATION_REVOKE_PREVIOUS, ANNOTATION_ROTATE, FIELD_MANAGER},
    },
    credentials::{
        generate::{self, ClientSecret},
        hash::{self, PhcHash},
        record::{
            ANNOTATION_APP_NAME, ANNOTATION_APP_NAMESPACE, AppKey, ClientRecord, Pending, Previous,
            SecretKind, record_name,
        },
        secret::{self as tenant_secret, SecretContent},
    },
    metrics::EventLabels,
    rotation,
    tenancy::{self, Grant},
};

const KIND: &str = "M2MApp";

pub async fn reconcile(app: Arc<M2MApp>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_app(&app, &ctx).await;
    super::observe(&ctx, KIND, started, &result);
    result
}

/// The keys of the app being reconciled.
struct Keys {
    namespace: String,
    name: String,
    uid: String,
}

async fn reconcile_app(app: &M2MApp, ctx: &Context) -> Result<Action, Error> {
    let (Some(namespace), Some(name), Some(uid)) = (
        app.namespace(),
        app.metadata.name.clone(),
        app.metadata.uid.clone(),
    ) else {
        return Err(Error::MissingObjectKey);
    };
    if app.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let keys = Keys {
        namespace,
        name,
        uid,
    };
    let now = Timestamp::now();

    // Dereference: the Organization and Namespace from the cache, the Secret and client
    // record from the API (fresh reads: the credential decisions must never act on a stale view).
    let org = app
        .spec
        .organization_ref
        .as_ref()
        .and_then(|r| ctx.cache.organizations.get(&ObjectRef::new(&r.name)));
    let org_state = org.as_deref().map(|o| {
        let sharing = ctx
            .cache
            .org_codes
            .sharing(o.effective_code(), &ctx.cache.organizations);
        tenancy::org_state(o, sharing.iter().map(AsRef::as_ref))
    });
    let namespace_labels = ctx
        .cache
        .namespaces
        .get(&ObjectRef::new(&keys.namespace))
        .and_then(|ns| ns.metadata.labels.clone());
    let grant = tenancy::grant(
        app,
        org.as_deref().zip(org_state.as_ref()),
        namespace_labels.as_ref(),
    );
    let block = tenancy::block(app, org.as_deref());

    let records: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.config.operator_namespace);
    let record_secret_name = record_name(&keys.uid);
    let record_secret = records
        .get_opt(&record_secret_name)
        .await
        .map_err(|source| Error::GetRecord {
            name: record_secret_name.clone(),
            source,
        })?;
    let record = record_secret
        .as_ref()
        .and_then(|s| match ClientRecord::from_secret(s) {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable client record; it will be rebuilt");
                None
            }
        });
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &keys.namespace);
    let secret_name = app.secret_name();
    let secret = secrets
        .get_opt(&secret_name)
        .await
        .map_err(|source| Error::GetSecret {
            namespace: keys.namespace.clone(),
            name: secret_name.clone(),
            source,
        })?;
    let state = classify(ctx, app, secret.as_ref(), &keys.uid, record.as_ref()).await?;

    // Plan.
    let step = app_plan::credential_step(&grant, state, record.as_ref(), now);

    // Apply.
    let writer = Writer {
        ctx,
        app,
        keys: &keys,
        records: &records,
        secrets: &secrets,
        now,
    };
    let record_after = match (&step, &grant) {
        (CredentialStep::Hold, _) | (_, Err(_)) => record,
        (CredentialStep::Issue(cause), Ok(grant)) => Some(
            writer
                .issue(
                    *cause,
                    record,
                    record_secret.as_ref(),
                    secret.as_ref(),
                    grant,
                )
                .await?,
        ),
        (CredentialStep::RecoverRecord, Ok(grant)) => {
            let secret = secret.as_ref().ok_or(Error::Inconsistent(MISSING))?;
            Some(writer.recover_record(secret, grant).await?)
        }
        (CredentialStep::FinishRotation, Ok(grant)) => {
            let (record, record_secret, secret) = existing(record, &record_secret, &secret)?;
            Some(
                writer
                    .finish_rotation(record, record_secret, secret, grant)
                    .await?,
            )
        }
        (
            CredentialStep::Keep {
                drop_pending,
                drop_previous,
            },
            Ok(grant),
        ) => {
            let (mut record, record_secret, secret) = existing(record, &record_secret, &secret)?;
            let mut changed = *drop_pending || *drop_previous;
            if *drop_pending {
                record.pending = None;
            }
            if *drop_previous {
                record.previous = None;
            }
            let annotations = app.annotations();
            let decision = rotation::decide(
                &record,
                annotations.get(ANNOTATION_ROTATE).map(String::as_str),
                annotations
                    .get(ANNOTATION_REVOKE_PREVIOUS)
                    .map(String::as_str),
                rotation_every(app),
                now,
            );
            if let Some(value) = decision.revoke_previous {
                let had_previous = record.previous.take().is_some();
                record.handled_revoke_request = Some(value);
                changed = true;
                if had_previous {
                    publish(
                        ctx,
                        app,
                        EventType::Warning,
                        "PreviousSecretRevoked",
                        "RevokePrevious",
                        "the previous client secret was revoked before its grace period ended"
                            .to_owned(),
                    )
                    .await;
                }
            }
            match decision.rotate {
                Some(cause) => Some(
                    writer
                        .rotate(record, record_secret, secret, grant, cause)
                        .await?,
                ),
                None => {
                    if changed {
                        writer.write_record(&record, Some(record_secret)).await?;
                    }
                    writer.sync_secret(secret, &record, grant).await?;
                    Some(record)
                }
            }
        }
    };

    // Status.
    let conflict = state == SecretState::Foreign && grant.is_ok();
    let mut desired = app_plan::status(&StatusInputs {
        app,
        grant: &grant,
        block,
        record: record_after.as_ref(),
        conflict,
        every: rotation_every(app),
        now,
    });
    // The Secret version verified last (this reconcile's writes included), for the next process.
    // A marker of an older version matches nothing; it stays until a newer one is known.
    if let Some(verified) = ctx.remembered(&keys.uid) {
        desired.verified_secret = Some(verified.marker());
    }
    let old_reason = app
        .status
        .as_ref()
        .and_then(|s| ready_reason(&s.conditions).map(str::to_owned));
    let new_reason = ready_reason(&desired.conditions).map(str::to_owned);
    if app.status.as_ref() != Some(&desired) {
        let api: Api<M2MApp> = Api::namespaced(ctx.client.clone(), &keys.namespace);
        let patch = serde_json::json!({
            "apiVersion": "m2m.dev/v1alpha1",
            "kind": KIND,
            "status": desired,
        });
        api.patch_status(
            &keys.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| Error::PatchStatus {
            kind: KIND,
            name: keys.name.clone(),
            source,
        })?;
    }
    if old_reason != new_reason
        && let Some(condition) = desired.conditions.first()
        && condition.status == "False"
        && condition.reason != app_reasons::CREDENTIALS_ISSUED
    {
        publish(
            ctx,
            app,
            EventType::Warning,
            &condition.reason,
            "Refuse",
            condition.message.clone(),
        )
        .await;
    }

    // Wake up when the previous secret's grace period ends (to drop its hash) or the next
    // scheduled rotation is due.
    let wake_at = record_after.as_ref().and_then(|r| {
        let grace_end = r.previous.as_ref().map(|p| p.expires_at);
        let next = rotation::next_rotation(r, rotation_every(app));
        grace_end.into_iter().chain(next).min()
    });
    let wake = wake_at
        .and_then(|t| std::time::Duration::try_from(t.duration_since(now)).ok())
        .map_or(ctx.config.resync, |d| {
            d.min(ctx.config.resync) + std::time::Duration::from_millis(100)
        });
    Ok(Action::requeue(wake))
}

const MISSING: &str = "the plan expected an object that is not there";

/// The record, its Secret and the app's Secret, which the plan found present.
fn existing<'a>(
    record: Option<ClientRecord>,
    record_secret: &'a Option<Secret>,
    secret: &'a Option<Secret>,
) -> Result<(ClientRecord, &'a Secret, &'a Secret), Error> {
    Ok((
        record.ok_or(Error::Inconsistent(MISSING))?,
        record_secret.as_ref().ok_or(Error::Inconsistent(MISSING))?,
        secret.as_ref().ok_or(Error::Inconsistent(MISSING))?,
    ))
}

/// Decides which recorded hash (if any) the Secret's `client_secret` matches, verifying with
/// argon2id only when the Secret or the hashes changed since the last check.
async fn classify(
    ctx: &Context,
    app: &M2MApp,
    secret: Option<&Secret>,
    uid: &str,
    record: Option<&ClientRecord>,
) -> Result<SecretState, Error> {
    let Some(secret) = secret else {
        return Ok(SecretState::Missing);
    };
    if !tenant_secret::controlled_by(&secret.metadata, uid) {
        return Ok(SecretState::Foreign);
    }
    let Some(plain) = tenant_secret::client_secret_of(secret) else {
        return Ok(SecretState::Ours {
            matched: None,
            readable: false,
        });
    };
    let Some(record) = record else {
        return Ok(SecretState::Ours {
            matched: None,
            readable: true,
        });
    };
    let candidates: Vec<(PhcHash, SecretKind)> =
        std::iter::once((record.current.clone(), SecretKind::Current))
            .chain(
                record
                    .pending
                    .as_ref()
                    .map(|p| (p.hash.clone(), SecretKind::Pending)),
            )
            .chain(
                record
                    .previous
                    .as_ref()
                    .map(|p| (p.hash.clone(), SecretKind::Previous)),
            )
            .collect();
    let secret_uid = secret.metadata.uid.clone().unwrap_or_default();
    let resource_version = secret.metadata.resource_version.clone().unwrap_or_default();
    // Verified before: by this process (memory), or by any earlier one (the marker it left in
    // the status). Either names the Secret version and the hash, so an edit or a new hash
    // does not match.
    let in_memory = ctx
        .remembered(uid)
        .filter(|v| v.secret_uid == secret_uid && v.resource_version == resource_version)
        .filter(|v| candidates.iter().any(|(h, k)| *h == v.hash && *k == v.kind))
        .map(|v| v.kind);
    let in_status = || {
        let marker = app.status.as_ref()?.verified_secret.as_deref()?;
        candidates
            .iter()
            .find(|(hash, kind)| {
                app_plan::verified_marker(&secret_uid, &resource_version, *kind, hash) == marker
            })
            .map(|(hash, kind)| {
                ctx.remember_verified(uid, secret, hash, *kind);
                *kind
            })
    };
    if let Some(kind) = in_memory.or_else(in_status) {
        return Ok(SecretState::Ours {
            matched: Some(kind),
            readable: true,
        });
    }
    let _permit = ctx
        .hashing
        .acquire()
        .await
        .map_err(|_| Error::Inconsistent("the hashing pool is closed"))?;
    let checks = candidates.clone();
    let metrics = ctx.metrics.clone();
    let matched = tokio::task::spawn_blocking(move || {
        checks
            .into_iter()
            .find(|(hash, _)| metrics.time_argon2("verify", || hash::verify(plain.expose(), hash)))
    })
    .await
    .map_err(Error::Blocking)?;
    if let Some((hash, kind)) = &matched {
        ctx.remember_verified(uid, secret, hash, *kind);
    }
    Ok(SecretState::Ours {
        matched: matched.map(|(_, kind)| kind),
        readable: true,
    })
}

/// The writes of one reconcile.
struct Writer<'a> {
    ctx: &'a Context,
    app: &'a M2MApp,
    keys: &'a Keys,
    records: &'a Api<Secret>,
    secrets: &'a Api<Secret>,
    now: Timestamp,
}

impl Writer<'_> {
    async fn hash(&self, secret: &ClientSecret) -> Result<PhcHash, Error> {
        let _permit = self
            .ctx
            .hashing
            .acquire()
            .await
            .map_err(|_| Error::Inconsistent("the hashing pool is closed"))?;
        let secret = secret.clone();
        let metrics = self.ctx.metrics.clone();
        tokio::task::spawn_blocking(move || metrics.time_argon2("hash", || hash::hash(&secret)))
            .await
            .map_err(Error::Blocking)?
            .map_err(Error::from)
    }

    /// A new secret: record first, then the Secret.
    async fn issue(
        &self,
        cause: IssueCause,
        record: Option<ClientRecord>,
        record_secret: Option<&Secret>,
        existing: Option<&Secret>,
        grant: &Grant,
    ) -> Result<ClientRecord, Error> {
        let secret = generate::client_secret()?;
        let current = self.hash(&secret).await?;
        let record = match record {
            Some(old) => ClientRecord {
                current,
                pending: None,
                previous: None,
                ..old
            },
            None => self.new_record(current, 1),
        };
        self.write_record(&record, record_secret).await?;
        let written = self.write_secret(existing, &secret, &record, grant).await?;
        // This controller wrote that secret: the next reconcile need not argon2-verify it.
        self.ctx.remember_verified(
            &self.keys.uid,
            &written,
            &record.current,
            SecretKind::Current,
        );
        let (action, reason, note) = match cause {
            IssueCause::First => (
                "issued",
                "CredentialsIssued",
                format!(
                    "issued client credentials into Secret {:?}",
                    self.app.secret_name()
                ),
            ),
            IssueCause::SecretDeleted => (
                "repaired",
                "SecretRepaired",
                format!(
                    "Secret {:?} was deleted; issued a new client secret (the old one no longer works)",
                    self.app.secret_name()
                ),
            ),
            IssueCause::SecretEdited => (
                "repaired",
                "SecretRepaired",
                format!(
                    "client_secret in Secret {:?} was changed outside the operator; issued a new client secret",
                    self.app.secret_name()
                ),
            ),
        };
        let kind = if cause == IssueCause::First {
            EventType::Normal
        } else {
            EventType::Warning
        };
        self.ctx
            .metrics
            .credentials
            .get_or_create(&EventLabels { action })
            .inc();
        publish(self.ctx, self.app, kind, reason, "IssueCredentials", note).await;
        Ok(record)
    }

    /// Rebuilds a lost record from the intact Secret.
    async fn recover_record(&self, secret: &Secret, grant: &Grant) -> Result<ClientRecord, Error> {
        let plain = tenant_secret::client_secret_of(secret).ok_or(Error::Inconsistent(MISSING))?;
        let current = self.hash(&plain).await?;
        let revision = secret
            .annotations()
            .get(ANNOTATION_REVISION)
            .and_then(|r| r.parse().ok())
            .unwrap_or(1);
        let record = self.new_record(current, revision);
        self.write_record(&record, None).await?;
        self.sync_secret(secret, &record, grant).await?;
        self.ctx
            .metrics
            .credentials
            .get_or_create(&EventLabels {
                action: "recovered",
            })
            .inc();
        publish(
            self.ctx,
            self.app,
            EventType::Warning,
            "RecordRecovered",
            "RecoverRecord",
            "the client record was missing; rebuilt it from the Secret (the secret is unchanged)"
                .to_owned(),
        )
        .await;
        Ok(record)
    }

    /// The Secret already holds the pending secret (a rotation was interrupted after writing
    /// it): make it current, keep the old one for the grace period.
    async fn finish_rotation(
        &self,
        record: ClientRecord,
        record_secret: &Secret,
        secret: &Secret,
        grant: &Grant,
    ) -> Result<ClientRecord, Error> {
        let record = self.promote_pending(record);
        self.write_record(&record, Some(record_secret)).await?;
        self.sync_secret(secret, &record, grant).await?;
        Ok(record)
    }

    /// The record after its pending secret became current.
    fn promote_pending(&self, record: ClientRecord) -> ClientRecord {
        let Some(pending) = record.pending.clone() else {
            return record;
        };
        let expires_at = rotation::previous_expires_at(self.now, grace_period(self.app));
        ClientRecord {
            previous: expires_at.map(|expires_at| Previous {
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

    /// Rotates the secret, crash-safe: (1) the new secret's hash goes into the record as
    /// pending (accepted from now on, the current one still accepted), (2) the Secret gets the
    /// new secret and revision, (3) the record makes it current and keeps the old one as
    /// previous until the grace period ends. Dying after (1) leaves the old secret in place and
    /// the request unhandled, so the next reconcile starts over; dying after (2) is finished by
    /// the next reconcile ([`CredentialStep::FinishRotation`]). No secret a workload may hold is
    /// ever refused before its grace period ends.
    async fn rotate(
        &self,
        mut record: ClientRecord,
        record_secret: &Secret,
        secret: &Secret,
        grant: &Grant,
        cause: rotation::Cause,
    ) -> Result<ClientRecord, Error> {
        let new_secret = generate::client_secret()?;
        let hash = self.hash(&new_secret).await?;
        record.pending = Some(Pending {
            hash,
            rotate_request: match &cause {
                rotation::Cause::Requested(value) => Some(value.clone()),
                rotation::Cause::Scheduled => None,
            },
            started_at: self.now,
        });
        let written = self.write_record(&record, Some(record_secret)).await?;
        let next = ClientRecord {
            revision: record.revision + 1,
            ..record.clone()
        };
        let written_secret = self
            .write_secret(Some(secret), &new_secret, &next, grant)
            .await?;
        let record = self.promote_pending(record);
        self.write_record(&record, Some(&written)).await?;
        self.ctx.remember_verified(
            &self.keys.uid,
            &written_secret,
            &record.current,
            SecretKind::Current,
        );
        self.ctx
            .metrics
            .credentials
            .get_or_create(&EventLabels { action: "rotated" })
            .inc();
        let why = match cause {
            rotation::Cause::Requested(value) => format!("m2m.dev/rotate={value:?}"),
            rotation::Cause::Scheduled => "spec.rotation.every".to_owned(),
        };
        let until = record
            .previous
            .as_ref()
            .map_or("is revoked now".to_owned(), |p| {
                format!("works until {}", p.expires_at)
            });
        publish(
            self.ctx,
            self.app,
            EventType::Normal,
            "SecretRotated",
            "RotateSecret",
            format!(
                "rotated the client secret in Secret {:?} to revision {} ({why}); the previous secret {until}",
                self.app.secret_name(),
                record.revision
            ),
        )
        .await;
        Ok(record)
    }

    fn new_record(&self, current: PhcHash, revision: i64) -> ClientRecord {
        let annotations = self.app.annotations();
        ClientRecord {
            client_id: generate::client_id(&self.keys.uid),
            app: AppKey {
                namespace: self.keys.namespace.clone(),
                name: self.keys.name.clone(),
                uid: self.keys.uid.clone(),
            },
            current,
            pending: None,
            previous: None,
            revision,
            last_rotation_time: self.now,
            // Annotations present at issue ask for nothing: there is no older secret yet.
            handled_rotate_request: annotations.get(ANNOTATION_ROTATE).cloned(),
            handled_revoke_request: annotations.get(ANNOTATION_REVOKE_PREVIOUS).cloned(),
        }
    }

    /// Creates the record, or replaces it guarded by the resourceVersion that was read.
    async fn write_record(
        &self,
        record: &ClientRecord,
        existing: Option<&Secret>,
    ) -> Result<Secret, Error> {
        let mut desired = record
            .to_secret(&self.ctx.config.operator_namespace)
            .map_err(Error::SerializeRecord)?;
        let name = desired.name_any();
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        let result = match existing {
            None => self.records.create(&params, &desired).await,
            Some(existing) => {
                desired.metadata.resource_version = existing.metadata.resource_version.clone();
                self.records.replace(&name, &params, &desired).await
            }
        };
        result.map_err(|source| Error::WriteRecord { name, source })
    }

    fn content<'a>(&'a self, record: &'a ClientRecord, grant: &'a Grant) -> SecretContent<'a> {
        SecretContent {
            client_id: &record.client_id,
            org_code: grant.org_code.as_deref(),
            scopes: &grant.scopes,
            revision: record.revision,
            endpoints: &self.ctx.config.endpoints,
        }
    }

    /// Writes the Secret with `secret`: created when missing (never over a foreign one),
    /// otherwise applied guarded by the resourceVersion that was read.
    async fn write_secret(
        &self,
        existing: Option<&Secret>,
        secret: &ClientSecret,
        record: &ClientRecord,
        grant: &Grant,
    ) -> Result<Secret, Error> {
        let mut desired = tenant_secret::render(self.app, secret, &self.content(record, grant))
            .ok_or(Error::MissingObjectKey)?;
        let name = desired.name_any();
        let result = match existing {
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
        result.map_err(|source| Error::WriteSecret {
            namespace: self.keys.namespace.clone(),
            name,
            source,
        })
    }

    /// Brings the Secret's non-secret fields in line, keeping its secret. No write when in sync.
    async fn sync_secret(
        &self,
        existing: &Secret,
        record: &ClientRecord,
        grant: &Grant,
    ) -> Result<(), Error> {
        let secret =
            tenant_secret::client_secret_of(existing).ok_or(Error::Inconsistent(MISSING))?;
        let desired = tenant_secret::render(self.app, &secret, &self.content(record, grant))
            .ok_or(Error::MissingObjectKey)?;
        if tenant_secret::in_sync(existing, &desired) {
            return Ok(());
        }
        let written = self
            .write_secret(Some(existing), &secret, record, grant)
            .await?;
        // The same secret in a new version of the Secret: what was verified of the old version
        // holds for it.
        if let Some(verified) = self.ctx.remembered(&self.keys.uid).filter(|v| {
            Some(&v.secret_uid) == existing.metadata.uid.as_ref()
                && Some(&v.resource_version) == existing.metadata.resource_version.as_ref()
        }) {
            self.ctx
                .remember_verified(&self.keys.uid, &written, &verified.hash, verified.kind);
        }
        publish(
            self.ctx,
            self.app,
            EventType::Normal,
            "SecretUpdated",
            "SyncSecret",
            format!(
                "updated Secret {:?} to match the M2MApp (the client secret is unchanged)",
                self.app.secret_name()
            ),
        )
        .await;
        Ok(())
    }
}

/// `spec.rotation.every`, if set (validated by the API server).
pub fn rotation_every(app: &M2MApp) -> Option<std::time::Duration> {
    let every = app.spec.rotation.as_ref()?.every.as_deref()?;
    crate::api::duration::parse(every).ok()
}

/// `spec.rotation.gracePeriod` (validated by the API server; default 1h).
pub fn grace_period(app: &M2MApp) -> std::time::Duration {
    let text = app
        .spec
        .rotation
        .as_ref()
        .map_or(crate::api::keys::DEFAULT_GRACE_PERIOD, |r| {
            r.grace_period.as_str()
        });
    crate::api::duration::parse(text).unwrap_or(std::time::Duration::from_secs(3600))
}

async fn publish(
    ctx: &Context,
    app: &M2MApp,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &app.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "publishing an Event failed");
    }
}

// ---- trigger mappers: which apps a change of another object concerns ----

pub fn apps_of_org(apps: &Store<M2MApp>, org: &crate::api::Organization) -> Vec<ObjectRef<M2MApp>> {
    let name = org.name_any();
    apps.state()
        .iter()
        .filter(|a| {
            a.spec
                .organization_ref
                .as_ref()
                .is_some_and(|r| r.name == name)
        })
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

pub fn apps_in_namespace(
    apps: &Store<M2MApp>,
    ns: &PartialObjectMeta<Namespace>,
) -> Vec<ObjectRef<M2MApp>> {
    let name = ns.name_any();
    apps.state()
        .iter()
        .filter(|a| a.metadata.namespace.as_deref() == Some(name.as_str()))
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

pub fn owner_of_secret(secret: &PartialObjectMeta<Secret>) -> Option<ObjectRef<M2MApp>> {
    let namespace = secret.metadata.namespace.as_deref()?;
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| {
            o.controller == Some(true) && o.kind == KIND && o.api_version.starts_with("m2m.dev/")
        })
        .map(|o| ObjectRef::new(&o.name).within(namespace))
}

pub fn app_of_record(record: &Secret) -> Option<ObjectRef<M2MApp>> {
    let annotations: &BTreeMap<String, String> = record.metadata.annotations.as_ref()?;
    let namespace = annotations.get(ANNOTATION_APP_NAMESPACE)?;
    let name = annotations.get(ANNOTATION_APP_NAME)?;
    Some(ObjectRef::new(name).within(namespace))
}
