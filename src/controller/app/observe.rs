//! Dereference: everything one M2MApp reconcile decides from, read once. The Organization,
//! Namespace and client record come from the cache (every write is guarded by the
//! resourceVersion it read, so a stale view costs a retry, never a wrong write); the app's Secret
//! is read from the API when it may exist ([`read_secret`]); its `client_secret` is matched
//! against the record's hashes (argon2id only when that Secret version was not confirmed
//! before).

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{Api, runtime::reflector::ObjectRef};

use super::{plan::SecretState, write_failures::Failure};
use crate::{
    api::M2MApp,
    controller::{Context, Error, verified},
    credentials::{
        hash::{self, PhcHash},
        record::{ClientRecord, SecretKind, record_name},
        secret::{self as tenant_secret, Endpoints},
    },
    tenancy::{self, Block, Grant, Refusal},
};

/// The namespace, name and UID of the app being reconciled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppKeys {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl AppKeys {
    pub fn of(app: &M2MApp) -> Option<Self> {
        Some(Self {
            namespace: app.metadata.namespace.clone()?,
            name: app.metadata.name.clone()?,
            uid: app.metadata.uid.clone()?,
        })
    }
}

/// What one reconcile read.
pub struct Observed<'a> {
    pub app: &'a M2MApp,
    pub keys: AppKeys,
    pub now: Timestamp,
    /// Where the token endpoint is (written into the Secret).
    pub endpoints: Endpoints,
    /// Whether the app may have credentials, and with which `org_code` and scopes.
    pub grant: Result<Grant, Refusal>,
    /// Whether an app with a grant is blocked from getting tokens now.
    pub block: Option<Block>,
    /// The UID of the app's Organization, if it is bound to one that exists.
    pub org_uid: Option<String>,
    /// The client record, if present and readable.
    pub record: Option<ClientRecord>,
    /// The resourceVersion of the Secret the record is stored in (also when it is unreadable;
    /// `None`: there is none), the guard of the next record write.
    pub record_version: Option<String>,
    /// The app's Secret.
    pub secret: Option<Secret>,
    pub secret_state: SecretState,
    /// Whether this exact version of the app's Secret is one the operator wrote or confirmed
    /// against a hash (by this process, or by an earlier one through `status.verifiedSecret`).
    /// Only such a Secret may rebuild a lost record: any other could hold a secret of someone
    /// else's choosing.
    pub secret_vouched: bool,
    /// The app's last refused Secret write, if the streak is not over.
    pub write_failure: Option<Failure>,
    /// Whether that failure still holds: no Secret is written, no secret hashed, until then.
    pub secret_writes_deferred: bool,
    /// The keys of `spec.secretTemplate` the operator does not allow (then no Secret is
    /// written at all).
    pub template_refused: Vec<String>,
    /// What the replicas report of the app (quota exceeded, previous secret used).
    pub usage: AppUsageFacts,
    /// `spec.rotation.retirePreviousWhenUnusedFor`, at least twice the replicas' report
    /// interval (so a use is reported before its absence can retire anything); `None` without
    /// the policy, or while the replicas' reports are not all read yet.
    pub retire_unused_after: Option<std::time::Duration>,
}

/// What the replicas' usage reports say of one app, merged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppUsageFacts {
    pub quota_exceeded_at: Option<u64>,
    /// Uses of the previous secret of the record's current revision.
    pub previous_secret: Option<crate::usage::report::PreviousUse>,
}

impl AppUsageFacts {
    /// The facts of the app with `uid` whose record is at `revision`, from every report.
    pub fn of(board: &crate::usage::publish::Board, uid: &str, revision: Option<i64>) -> Self {
        use crate::usage::report;
        board.with(|reports| Self {
            quota_exceeded_at: report::app_quota_exceeded(reports.values(), uid),
            previous_secret: revision
                .and_then(|rev| report::previous_secret(reports.values(), uid, rev)),
        })
    }
}

impl Observed<'_> {
    /// The latest use of the previous secret of the record's revision that is known: reported
    /// by the replicas, or already in status (a replica that restarted forgot its counts).
    /// Both are whole seconds, rounded down; this is the end of that second, so an idle time
    /// counted from it is never short.
    pub fn previous_last_used(&self) -> Option<Timestamp> {
        let revision = self.record.as_ref()?.revision;
        let reported = self
            .usage
            .previous_secret
            .and_then(|p| Timestamp::from_second(i64::try_from(p.last_used_at).ok()?).ok());
        let shown = self
            .app
            .status
            .as_ref()
            .and_then(|s| s.rotation.as_ref())
            .filter(|r| r.revision == revision)
            .and_then(|r| r.previous_secret_last_used_at.as_ref())
            .map(|t| t.0);
        reported.max(shown).and_then(|t| {
            t.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(1))
                .ok()
        })
    }

    /// Whether this reconcile may write the app's Secret (and so hash a new secret for it).
    pub fn may_write_secret(&self) -> bool {
        !self.secret_writes_deferred && self.template_refused.is_empty()
    }
}

/// Reads everything the reconcile of `app` needs.
pub async fn observe<'a>(
    ctx: &Context,
    app: &'a M2MApp,
    keys: AppKeys,
    now: Timestamp,
) -> Result<Observed<'a>, Error> {
    let (grant, block, org_uid) = tenancy_of(ctx, app, &keys.namespace);
    // The client record comes from the cache (the watch of the operator's own Secrets, with
    // data): every write of it is guarded by the resourceVersion it was read at, so a stale
    // view costs a conflict and a retry, never a lost hash.
    let cached = ctx.cache.records.get(&record_name(&keys.uid));
    let record_version = cached
        .as_ref()
        .map(|c| c.resource_version.as_deref().unwrap_or_default().to_owned());
    let record = cached.as_ref().and_then(|c| match &c.record {
        Ok(record) => Some(ClientRecord::clone(record)),
        Err(e) => {
            tracing::warn!(error = %e.reason, "unreadable client record; it will be rebuilt");
            None
        }
    });
    let secret = read_secret(ctx, app, &keys, record_version.is_some()).await?;
    let secret_state = classify(ctx, app, secret.as_ref(), &keys.uid, record.as_ref()).await?;
    let secret_vouched = secret
        .as_ref()
        .is_some_and(|s| vouched(ctx, app, &keys.uid, s));
    let write_failure = ctx.write_failures.get(&keys.uid);
    let secret_writes_deferred = write_failure.as_ref().is_some_and(|f| {
        f.holds(
            app.metadata.generation,
            secret
                .as_ref()
                .and_then(|s| s.metadata.resource_version.as_deref()),
            tokio::time::Instant::now(),
        )
    });
    let usage = AppUsageFacts::of(&ctx.usage, &keys.uid, record.as_ref().map(|r| r.revision));
    Ok(Observed {
        app,
        keys,
        now,
        endpoints: ctx.config.endpoints.clone(),
        grant,
        block,
        org_uid,
        record,
        record_version,
        secret,
        secret_state,
        secret_vouched,
        write_failure,
        secret_writes_deferred,
        template_refused: ctx
            .config
            .template_keys
            .refused(app.spec.secret_template.as_deref()),
        usage,
        retire_unused_after: ctx
            .usage
            .synced()
            .then(|| app.retire_previous_when_unused_for())
            .flatten()
            .map(|d| d.max(2 * ctx.config.usage_report_interval)),
    })
}

/// Whether the operator wrote or confirmed exactly this version of the app's Secret.
fn vouched(ctx: &Context, app: &M2MApp, uid: &str, secret: &Secret) -> bool {
    ctx.verified.get(uid).is_some_and(|v| v.is_of(secret))
        || app
            .status
            .as_ref()
            .and_then(|s| s.verified_secret.as_deref())
            .is_some_and(|marker| verified::marker_names(marker, secret))
}

/// The app's Secret. The cache holds tenant Secrets as metadata only (it never holds their
/// secrets), so the Secret is read from the API, except when neither it nor the record is in the
/// cache: a first issue, which creates both with `create` (refused if either exists after all, so
/// a cache that lags costs a retry). With a record, an absent cached Secret is read anyway: the
/// operator re-issues over a record only when the API confirms the Secret is gone.
async fn read_secret(
    ctx: &Context,
    app: &M2MApp,
    keys: &AppKeys,
    have_record: bool,
) -> Result<Option<Secret>, Error> {
    let secret_name = app.secret_name();
    let cached = ctx
        .cache
        .tenant_secrets
        .contains(&keys.namespace, &secret_name);
    if !cached && !have_record {
        return Ok(None);
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &keys.namespace);
    secrets
        .get_opt(&secret_name)
        .await
        .map_err(|source| Error::GetSecret {
            namespace: keys.namespace.clone(),
            name: secret_name.clone(),
            source,
        })
}

/// The grant and block of `app`, from the cached Organization and Namespace.
fn tenancy_of(
    ctx: &Context,
    app: &M2MApp,
    namespace: &str,
) -> (Result<Grant, Refusal>, Option<Block>, Option<String>) {
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
        .get(&ObjectRef::new(namespace))
        .and_then(|ns| ns.metadata.labels.clone());
    let grant = tenancy::grant(
        app,
        org.as_deref().zip(org_state.as_ref()),
        namespace_labels.as_ref(),
        &ctx.config.global_apps,
    );
    let org_uid = org.as_ref().and_then(|o| o.metadata.uid.clone());
    (grant, tenancy::block(app, org.as_deref()), org_uid)
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
    let candidates = candidates(record);
    // Verified before: by this process (memory), or by any earlier one (the marker it left in
    // the status). Either names the Secret version and the hash, so an edit or a new hash
    // does not match.
    let in_memory = ctx
        .verified
        .get(uid)
        .filter(|v| v.is_of(secret))
        .filter(|v| candidates.iter().any(|(h, k)| v.matched(h) && *k == v.kind))
        .map(|v| v.kind);
    let in_status = || {
        let marker = app.status.as_ref()?.verified_secret.as_deref()?;
        let (uid_s, version) = (
            secret.metadata.uid.as_deref().unwrap_or_default(),
            secret
                .metadata
                .resource_version
                .as_deref()
                .unwrap_or_default(),
        );
        candidates
            .iter()
            .find(|(hash, kind)| verified::marker(uid_s, version, *kind, hash) == marker)
            .map(|(hash, kind)| {
                ctx.verified.remember(uid, secret, hash, *kind);
                *kind
            })
    };
    if let Some(kind) = in_memory.or_else(in_status) {
        return Ok(SecretState::Ours {
            matched: Some(kind),
            readable: true,
        });
    }
    let matched = ctx
        .hashing
        .run("verify", move || {
            candidates
                .into_iter()
                .find(|(hash, _)| hash::verify(plain.expose(), hash))
        })
        .await?;
    if let Some((hash, kind)) = &matched {
        ctx.verified.remember(uid, secret, hash, *kind);
    }
    Ok(SecretState::Ours {
        matched: matched.map(|(_, kind)| kind),
        readable: true,
    })
}

/// Every hash of the record, with its kind.
fn candidates(record: &ClientRecord) -> Vec<(PhcHash, SecretKind)> {
    record
        .current
        .iter()
        .map(|h| (h.clone(), SecretKind::Current))
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
        .collect()
}
