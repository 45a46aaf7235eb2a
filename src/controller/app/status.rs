//! The M2MApp status from what was observed and what apply left in the record (pure), the Event
//! of a new refusal, and when the app must be looked at again.

use std::time::Duration;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Condition, jiff::Timestamp};

use super::{observe::Observed, plan::SecretState};
use crate::{
    api::{M2MApp, M2MAppStatus, RotationStatus, conditions::app_reasons},
    controller::{
        conditions::{self, ready_reason},
        events::Note,
        usage_status,
    },
    credentials::record::ClientRecord,
    rotation,
    tenancy::{Block, Grant, Refusal},
    usage::report::PreviousUse,
};

/// Everything the status is computed from.
pub struct StatusInputs<'a> {
    pub app: &'a M2MApp,
    pub grant: &'a Result<Grant, Refusal>,
    pub block: Option<Block>,
    /// The record after this reconcile's writes.
    pub record: Option<&'a ClientRecord>,
    pub conflict: bool,
    pub now: Timestamp,
    /// The `status.verifiedSecret` marker to write (`None`: keep the one there).
    pub verified_secret: Option<String>,
    /// Why the app's Secret cannot be written now (a refusal of the API server).
    pub write_failure: Option<String>,
    /// `secretTemplate` keys the operator does not allow.
    pub template_refused: &'a [String],
    /// The latest time a replica reported the app's quota exceeded.
    pub quota_reported: Option<u64>,
    /// What the replicas report of the previous secret of the record's revision.
    pub previous_reported: Option<PreviousUse>,
}

impl<'a> StatusInputs<'a> {
    pub fn new(o: &'a Observed<'a>, record: Option<&'a ClientRecord>) -> Self {
        Self {
            app: o.app,
            grant: &o.grant,
            block: o.block,
            record,
            conflict: o.secret_state == SecretState::Foreign && o.grant.is_ok(),
            now: o.now,
            verified_secret: None,
            write_failure: None,
            template_refused: &o.template_refused,
            quota_reported: o.usage.quota_exceeded_at,
            previous_reported: o.usage.previous_secret,
        }
    }

    /// The usage figures to show and when they need another look ([`usage_status::app`]).
    pub fn usage(&self) -> usage_status::AppUsage {
        usage_status::app(
            self.app,
            self.record,
            self.quota_reported,
            self.previous_reported,
            self.now,
        )
    }
}

/// The `Ready` condition's status, reason and message, in the order a person should fix
/// things: a refusal, a template key, a refused write, a conflict, then the block.
fn ready(inputs: &StatusInputs<'_>) -> (bool, &'static str, String) {
    let app = inputs.app;
    let secret_name = app.secret_name();
    let (ok, reason, message) = match (inputs.grant, inputs.conflict, inputs.record, inputs.block) {
        (Err(refusal), _, _, _) => (false, refusal.reason(), refusal.message()),
        (Ok(_), _, _, _) if !inputs.template_refused.is_empty() => (
            false,
            app_reasons::SECRET_TEMPLATE_NOT_ALLOWED,
            format!(
                "spec.secretTemplate sets keys the operator does not allow on Secrets: {} \
                 (see the operator's --secret-template-allowed-keys); Secret {secret_name:?} \
                 is not written",
                inputs.template_refused.join(", ")
            ),
        ),
        (Ok(_), false, _, _) if inputs.write_failure.is_some() => (
            false,
            app_reasons::SECRET_WRITE_FAILED,
            inputs.write_failure.clone().unwrap_or_default(),
        ),
        (Ok(_), true, _, _) => (
            false,
            app_reasons::SECRET_CONFLICT,
            format!(
                "Secret {secret_name:?} exists and is not controlled by this M2MApp; \
                 delete it or choose another spec.secretName"
            ),
        ),
        (Ok(_), false, None, _) => (
            false,
            app_reasons::CREDENTIALS_ISSUED,
            "credentials are being issued".to_owned(),
        ),
        (Ok(_), false, Some(_), Some(block)) => (false, block.reason(), block.message().to_owned()),
        (Ok(_), false, Some(record), None) if record.current.is_none() => (
            true,
            app_reasons::CREDENTIALS_ISSUED,
            format!(
                "the client id is in Secret {secret_name:?} (no client secret: the app \
                 authenticates as spec.clientAuthentication says)"
            ),
        ),
        (Ok(_), false, Some(record), None) => (
            true,
            app_reasons::CREDENTIALS_ISSUED,
            format!(
                "client credentials are in Secret {secret_name:?} (revision {})",
                record.revision
            ),
        ),
    };
    // A rotation that cannot happen now says so where people look.
    let waiting = inputs.record.and_then(|r| {
        rotation::new_request(app.rotate_request(), r.handled_rotate_request.as_deref())
    });
    let message = match waiting {
        Some(value)
            if !ok
                && (inputs.grant.is_err()
                    || inputs.conflict
                    || inputs.write_failure.is_some()
                    || !inputs.template_refused.is_empty()) =>
        {
            format!(
                "{message}; the rotation asked for by m2m.dev/rotate={value:?} waits until this is resolved"
            )
        }
        _ => message,
    };
    (ok, reason, message)
}

/// The desired status.
pub fn status(inputs: &StatusInputs<'_>) -> M2MAppStatus {
    let app = inputs.app;
    let previous_conditions: &[Condition] = app
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let secret_name = app.secret_name();
    let (ok, reason, message) = ready(inputs);
    let condition = conditions::ready(
        ok,
        reason,
        message,
        app.metadata.generation,
        previous_conditions,
        inputs.now,
    );
    let issued = inputs.record.filter(|_| !inputs.conflict);
    let grant = inputs.grant.as_ref().ok();
    let every = app.rotation_every();
    let usage_status::AppUsage {
        quota,
        previous_used_at,
        previous_uses,
        ..
    } = inputs.usage();
    M2MAppStatus {
        quota: quota.map(Box::new),
        client_id: issued.map(|r| r.client_id.clone()),
        secret_name: issued.map(|_| secret_name.clone()),
        organization_code: grant.and_then(|g| g.org_code.clone()),
        scopes: grant.map(|g| g.scopes.clone()).unwrap_or_default(),
        rotation: issued.map(|r| RotationStatus {
            revision: r.revision,
            last_rotation_time: Some(conditions::api_time(r.last_rotation_time)),
            next_rotation_time: rotation::next_rotation(r, every).map(conditions::api_time),
            previous_secret_expires_at: r
                .previous
                .as_ref()
                .filter(|p| p.expires_at > inputs.now)
                .map(|p| conditions::api_time(p.expires_at)),
            last_handled_rotate_request: r.handled_rotate_request.clone(),
            last_handled_revoke_request: r.handled_revoke_request.clone(),
            previous_secret_last_used_at: previous_used_at.clone(),
            previous_secret_uses: previous_uses,
        }),
        conditions: vec![condition],
        observed_generation: app.metadata.generation,
        // A marker of an older version matches nothing; it stays until a newer one is known.
        verified_secret: inputs
            .verified_secret
            .clone()
            .or_else(|| app.status.as_ref().and_then(|s| s.verified_secret.clone())),
    }
}

/// The Warning Event of a `Ready=False` reason the app did not have before.
pub fn refusal_note(app: &M2MApp, desired: &M2MAppStatus) -> Option<Note> {
    let old = app
        .status
        .as_ref()
        .and_then(|s| ready_reason(&s.conditions));
    let condition = desired.conditions.first()?;
    (old != Some(condition.reason.as_str())
        && condition.status == "False"
        && condition.reason != app_reasons::CREDENTIALS_ISSUED)
        .then(|| Note::warning(&condition.reason, "Refuse", condition.message.clone()))
}

/// When something of the app's own is due: the previous secret's grace period ends (its hash
/// is dropped) or the next scheduled rotation.
pub fn due_after(app: &M2MApp, record: Option<&ClientRecord>, now: Timestamp) -> Option<Duration> {
    let record = record?;
    let grace_end = record.previous.as_ref().map(|p| p.expires_at);
    let next = rotation::next_rotation(record, app.rotation_every());
    let due_at = grace_end.into_iter().chain(next).min()?;
    // Already past: this reconcile acted on it if it could (a grace period's end is enforced by
    // the token endpoint itself); one it could not act on (no grant, a refused Secret write)
    // waits for a change, a retry or the resync, never a tight loop.
    Duration::try_from(due_at.duration_since(now)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::M2MAppSpec,
        controller::app::plan::tests::{record, t},
        credentials::record::Previous,
    };

    fn ok() -> Result<Grant, Refusal> {
        Ok(Grant {
            org_code: None,
            scopes: vec![],
        })
    }

    fn app() -> M2MApp {
        let mut a = M2MApp::new(
            "agent",
            M2MAppSpec {
                audiences: vec!["api".into()],
                ..Default::default()
            },
        );
        a.metadata.namespace = Some("n".into());
        a.metadata.generation = Some(4);
        a
    }

    #[test]
    fn status_reports_issue_conflict_refusal_and_block() {
        let a = app();
        let rec = record();
        let grant = Ok(Grant {
            org_code: Some("org_1".into()),
            scopes: vec!["read".into()],
        });
        let inputs = |grant, record, conflict, block| StatusInputs {
            app: &a,
            grant,
            block,
            record,
            conflict,
            now: t(50),
            verified_secret: None,
            write_failure: None,
            template_refused: &[],
            quota_reported: None,
            previous_reported: None,
        };

        let ready = status(&inputs(&grant, Some(&rec), false, None));
        let c = &ready.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "CredentialsIssued")
        );
        assert_eq!(ready.client_id.as_deref(), Some(rec.client_id.as_str()));
        assert_eq!(ready.secret_name.as_deref(), Some("agent-credentials"));
        assert_eq!(ready.organization_code.as_deref(), Some("org_1"));
        assert_eq!(ready.scopes, ["read"]);
        assert_eq!(ready.rotation.as_ref().unwrap().revision, 1);
        assert_eq!(ready.observed_generation, Some(4));

        let conflict = status(&inputs(&grant, None, true, None));
        assert_eq!(conflict.conditions[0].reason, "SecretConflict");
        assert!(conflict.conditions[0].message.contains("agent-credentials"));
        assert_eq!(conflict.client_id, None);

        let refused = Err(Refusal::NamespaceNotAllowed {
            org: "acme".into(),
            namespace: "n".into(),
        });
        let r = status(&inputs(&refused, None, false, None));
        assert_eq!(
            (
                r.conditions[0].status.as_str(),
                r.conditions[0].reason.as_str()
            ),
            ("False", "NamespaceNotAllowed")
        );

        let blocked = status(&inputs(
            &grant,
            Some(&rec),
            false,
            Some(Block::OrganizationSuspended),
        ));
        assert_eq!(blocked.conditions[0].reason, "OrganizationSuspended");
        assert_eq!(
            blocked.client_id.as_deref(),
            Some(rec.client_id.as_str()),
            "credentials are kept"
        );
    }

    /// The controller writes the status only when it differs from the cached one, so the status
    /// it computes must survive the API's round trip (whole-second timestamps) unchanged.
    #[test]
    fn status_is_unchanged_by_a_round_trip_through_the_api() {
        let a = app();
        let mut rec = record();
        let now = t(50) + k8s_openapi::jiff::SignedDuration::from_millis(123);
        rec.last_rotation_time = now;
        rec.previous = Some(Box::new(Previous {
            hash: rec.current.clone().unwrap(),
            expires_at: now + k8s_openapi::jiff::SignedDuration::from_secs(3600),
        }));
        let grant = ok();
        let desired = status(&StatusInputs {
            app: &a,
            grant: &grant,
            block: None,
            record: Some(&rec),
            conflict: false,
            now,
            verified_secret: None,
            write_failure: None,
            template_refused: &[],
            quota_reported: None,
            previous_reported: None,
        });
        let stored: M2MAppStatus =
            serde_json::from_value(serde_json::to_value(&desired).unwrap()).unwrap();
        assert_eq!(stored, desired);
    }

    #[test]
    fn status_hides_an_expired_grace_period() {
        let a = app();
        let mut rec = record();
        rec.previous = Some(Box::new(Previous {
            hash: rec.current.clone().unwrap(),
            expires_at: t(100),
        }));
        let grant = ok();
        let at = |now| {
            status(&StatusInputs {
                app: &a,
                grant: &grant,
                block: None,
                record: Some(&rec),
                conflict: false,
                now,
                verified_secret: None,
                write_failure: None,
                template_refused: &[],
                quota_reported: None,
                previous_reported: None,
            })
        };
        assert!(
            at(t(99))
                .rotation
                .unwrap()
                .previous_secret_expires_at
                .is_some()
        );
        assert!(
            at(t(100))
                .rotation
                .unwrap()
                .previous_secret_expires_at
                .is_none()
        );
    }

    #[test]
    fn what_is_due_counts_from_now_and_what_is_past_is_not_due_again() {
        let mut a = app();
        a.spec.rotation = Some(Box::new(crate::api::RotationSpec {
            every: Some("1m".into()),
            grace_period: "0s".into(),
            retire_previous_when_unused_for: None,
        }));
        let rec = record(); // last rotated at t=100 s: the next is due at t=160 s
        assert_eq!(
            due_after(&a, Some(&rec), t(150)),
            Some(Duration::from_secs(10))
        );
        // A rotation the reconcile could not carry out (no grant, a refused Secret write) must
        // not requeue the app at once, again and again.
        assert_eq!(due_after(&a, Some(&rec), t(500)), None);
        assert_eq!(due_after(&app(), Some(&rec), t(150)), None, "no schedule");
        assert_eq!(due_after(&a, None, t(150)), None, "nothing issued");
    }
}
