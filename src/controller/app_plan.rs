//! The pure half of the M2MApp reconcile: given what was read, decide what to do with the
//! credentials, and what the status says. No I/O, no clock, no randomness.
//!
//! Write order (crash safety): the client record (hashes, in the operator's namespace) is always
//! written before the tenant Secret, so every secret a workload can ever read is accepted by the
//! token endpoint first. A secret that was hashed but never reached the Secret is harmless: no one
//! knows it, and the next reconcile replaces it.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Condition, jiff::Timestamp};

use super::conditions;
use crate::{
    api::{M2MApp, M2MAppStatus, RotationStatus, conditions::app_reasons},
    credentials::{
        hash::PhcHash,
        record::{ClientRecord, SecretKind},
    },
    tenancy::{Block, Grant, Refusal},
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

/// What to do with the credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialStep {
    /// Touch nothing (refused before credentials may exist, or the Secret is foreign).
    Hold,
    /// Generate a new secret: record first (current = new; no previous), then the Secret.
    Issue(IssueCause),
    /// The record was lost but the Secret is intact: re-hash the Secret's secret into a new
    /// record. No secret changes.
    RecoverRecord,
    /// The Secret already holds the pending secret: promote it in the record.
    FinishRotation,
    /// Keep the secret. Clean the record if needed and bring the Secret's other fields in line.
    Keep {
        drop_pending: bool,
        drop_previous: bool,
    },
}

/// Decides what to do with the credentials.
pub fn credential_step(
    grant: &Result<Grant, Refusal>,
    secret: SecretState,
    record: Option<&ClientRecord>,
    now: Timestamp,
) -> CredentialStep {
    if grant.is_err() {
        return CredentialStep::Hold;
    }
    match (secret, record) {
        (SecretState::Foreign, _) => CredentialStep::Hold,
        (SecretState::Missing, None) => CredentialStep::Issue(IssueCause::First),
        (SecretState::Missing, Some(_)) => CredentialStep::Issue(IssueCause::SecretDeleted),
        (
            SecretState::Ours {
                readable: false, ..
            },
            _,
        ) => CredentialStep::Issue(IssueCause::SecretEdited),
        (SecretState::Ours { readable: true, .. }, None) => CredentialStep::RecoverRecord,
        (SecretState::Ours { matched, .. }, Some(record)) => match matched {
            Some(SecretKind::Current) => CredentialStep::Keep {
                drop_pending: record.pending.is_some(),
                drop_previous: record
                    .previous
                    .as_ref()
                    .is_some_and(|p| p.expires_at <= now),
            },
            Some(SecretKind::Pending) => CredentialStep::FinishRotation,
            // The Secret holds a secret the record no longer treats as current: it was put back
            // or edited by hand; replace it.
            Some(SecretKind::Previous) | None => CredentialStep::Issue(IssueCause::SecretEdited),
        },
    }
}

/// Everything the status is computed from.
pub struct StatusInputs<'a> {
    pub app: &'a M2MApp,
    pub grant: &'a Result<Grant, Refusal>,
    pub block: Option<Block>,
    /// The record after this reconcile's writes.
    pub record: Option<&'a ClientRecord>,
    pub conflict: bool,
    /// `spec.rotation.every`, parsed.
    pub every: Option<std::time::Duration>,
    pub now: Timestamp,
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
    let (ok, reason, message) = match (inputs.grant, inputs.conflict, inputs.record, inputs.block) {
        (Err(refusal), _, _, _) => (false, refusal.reason(), refusal.message()),
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
        (Ok(_), false, Some(record), None) => (
            true,
            app_reasons::CREDENTIALS_ISSUED,
            format!(
                "client credentials are in Secret {secret_name:?} (revision {})",
                record.revision
            ),
        ),
    };
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
    M2MAppStatus {
        client_id: issued.map(|r| r.client_id.clone()),
        secret_name: issued.map(|_| secret_name.clone()),
        organization_code: grant.and_then(|g| g.org_code.clone()),
        scopes: grant.map(|g| g.scopes.clone()).unwrap_or_default(),
        rotation: issued.map(|r| RotationStatus {
            revision: r.revision,
            last_rotation_time: Some(conditions::api_time(r.last_rotation_time)),
            next_rotation_time: crate::rotation::next_rotation(r, inputs.every)
                .map(conditions::api_time),
            previous_secret_expires_at: r
                .previous
                .as_ref()
                .filter(|p| p.expires_at > inputs.now)
                .map(|p| conditions::api_time(p.expires_at)),
            last_handled_rotate_request: r.handled_rotate_request.clone(),
            last_handled_revoke_request: r.handled_revoke_request.clone(),
        }),
        conditions: vec![condition],
        observed_generation: app.metadata.generation,
        // Kept; the reconcile replaces it when it verified a newer version of the Secret.
        verified_secret: app.status.as_ref().and_then(|s| s.verified_secret.clone()),
    }
}

/// The `status.verifiedSecret` value saying that this version (`uid`, `resource_version`) of an
/// app's Secret holds the secret of the record's `kind` hash. It names the hash by a digest (a
/// hash of the PHC string, never of the secret), so a new hash of that kind no longer matches.
pub fn verified_marker(
    secret_uid: &str,
    resource_version: &str,
    kind: SecretKind,
    hash: &PhcHash,
) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, hash.as_str().as_bytes());
    let short: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let kind = match kind {
        SecretKind::Current => "current",
        SecretKind::Pending => "pending",
        SecretKind::Previous => "previous",
    };
    format!("{secret_uid}/{resource_version}/{kind}/{short}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::M2MAppSpec,
        credentials::record::{Pending, Previous},
    };

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn record() -> ClientRecord {
        serde_json::from_value(serde_json::json!({
            "clientId": "m2m_1", "app": {"namespace": "n", "name": "a", "uid": "u"},
            "current": "$argon2id$current", "revision": 1, "lastRotationTime": "2026-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn the_verified_marker_names_the_secret_version_and_the_hash_but_holds_neither_hash_nor_secret()
    {
        let phc = |s: &str| -> PhcHash { serde_json::from_value(serde_json::json!(s)).unwrap() };
        let hash = phc(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        );
        let other = phc("$argon2id$v=19$m=19456,t=2,p=1$b3RoZXI$b3RoZXI");
        let marker = verified_marker("uid-1", "42", SecretKind::Current, &hash);
        assert_eq!(
            marker,
            verified_marker("uid-1", "42", SecretKind::Current, &hash)
        );
        assert!(marker.starts_with("uid-1/42/current/"), "{marker}");
        for (changed, what) in [
            (
                verified_marker("uid-2", "42", SecretKind::Current, &hash),
                "Secret uid",
            ),
            (
                verified_marker("uid-1", "43", SecretKind::Current, &hash),
                "resourceVersion",
            ),
            (
                verified_marker("uid-1", "42", SecretKind::Previous, &hash),
                "kind",
            ),
            (
                verified_marker("uid-1", "42", SecretKind::Current, &other),
                "hash",
            ),
        ] {
            assert_ne!(
                changed, marker,
                "a different {what} gives a different marker"
            );
        }
        for part in hash.as_str().split('$').filter(|p| p.len() > 8) {
            assert!(!marker.contains(part), "no part of the hash in {marker}");
        }
    }

    fn ok() -> Result<Grant, Refusal> {
        Ok(Grant {
            org_code: None,
            scopes: vec![],
        })
    }

    const OURS_CURRENT: SecretState = SecretState::Ours {
        matched: Some(SecretKind::Current),
        readable: true,
    };

    #[test]
    fn refused_or_foreign_touches_nothing() {
        let refused = Err(Refusal::OrganizationNotFound { org: "x".into() });
        assert_eq!(
            credential_step(&refused, SecretState::Missing, None, t(0)),
            CredentialStep::Hold
        );
        assert_eq!(
            credential_step(&ok(), SecretState::Foreign, Some(&record()), t(0)),
            CredentialStep::Hold
        );
    }

    #[test]
    fn issues_when_missing_and_repairs_when_deleted_or_edited() {
        use CredentialStep::Issue;
        assert_eq!(
            credential_step(&ok(), SecretState::Missing, None, t(0)),
            Issue(IssueCause::First)
        );
        assert_eq!(
            credential_step(&ok(), SecretState::Missing, Some(&record()), t(0)),
            Issue(IssueCause::SecretDeleted)
        );
        let edited = SecretState::Ours {
            matched: None,
            readable: true,
        };
        assert_eq!(
            credential_step(&ok(), edited, Some(&record()), t(0)),
            Issue(IssueCause::SecretEdited)
        );
        let removed = SecretState::Ours {
            matched: None,
            readable: false,
        };
        assert_eq!(
            credential_step(&ok(), removed, Some(&record()), t(0)),
            Issue(IssueCause::SecretEdited)
        );
        let put_back = SecretState::Ours {
            matched: Some(SecretKind::Previous),
            readable: true,
        };
        assert_eq!(
            credential_step(&ok(), put_back, Some(&record()), t(0)),
            Issue(IssueCause::SecretEdited)
        );
    }

    #[test]
    fn a_lost_record_is_recovered_from_an_intact_secret() {
        let intact = SecretState::Ours {
            matched: None,
            readable: true,
        };
        assert_eq!(
            credential_step(&ok(), intact, None, t(0)),
            CredentialStep::RecoverRecord
        );
    }

    #[test]
    fn keeps_a_matching_secret_and_cleans_the_record() {
        let mut rec = record();
        assert_eq!(
            credential_step(&ok(), OURS_CURRENT, Some(&rec), t(0)),
            CredentialStep::Keep {
                drop_pending: false,
                drop_previous: false
            }
        );
        rec.pending = Some(Pending {
            hash: rec.current.clone(),
            rotate_request: None,
            started_at: t(0),
        });
        rec.previous = Some(Previous {
            hash: rec.current.clone(),
            expires_at: t(10),
        });
        assert_eq!(
            credential_step(&ok(), OURS_CURRENT, Some(&rec), t(9)),
            CredentialStep::Keep {
                drop_pending: true,
                drop_previous: false
            }
        );
        assert_eq!(
            credential_step(&ok(), OURS_CURRENT, Some(&rec), t(10)),
            CredentialStep::Keep {
                drop_pending: true,
                drop_previous: true
            }
        );
        let pending = SecretState::Ours {
            matched: Some(SecretKind::Pending),
            readable: true,
        };
        assert_eq!(
            credential_step(&ok(), pending, Some(&rec), t(0)),
            CredentialStep::FinishRotation
        );
    }

    #[test]
    fn planning_twice_on_the_same_world_decides_the_same() {
        let rec = record();
        for state in [SecretState::Missing, SecretState::Foreign, OURS_CURRENT] {
            assert_eq!(
                credential_step(&ok(), state, Some(&rec), t(5)),
                credential_step(&ok(), state, Some(&rec), t(5))
            );
        }
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
            every: None,
            now: t(50),
        };

        let ready = status(&inputs(&grant, Some(&rec), false, None));
        let c = &ready.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "CredentialsIssued")
        );
        assert_eq!(ready.client_id.as_deref(), Some("m2m_1"));
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
            Some("m2m_1"),
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
        rec.previous = Some(Previous {
            hash: rec.current.clone(),
            expires_at: now + k8s_openapi::jiff::SignedDuration::from_secs(3600),
        });
        let grant = ok();
        let desired = status(&StatusInputs {
            app: &a,
            grant: &grant,
            block: None,
            record: Some(&rec),
            conflict: false,
            every: Some(std::time::Duration::from_secs(86_400)),
            now,
        });
        let stored: M2MAppStatus =
            serde_json::from_value(serde_json::to_value(&desired).unwrap()).unwrap();
        assert_eq!(stored, desired);
    }

    #[test]
    fn status_hides_an_expired_grace_period() {
        let a = app();
        let mut rec = record();
        rec.previous = Some(Previous {
            hash: rec.current.clone(),
            expires_at: t(100),
        });
        let grant = ok();
        let at = |now| {
            status(&StatusInputs {
                app: &a,
                grant: &grant,
                block: None,
                record: Some(&rec),
                conflict: false,
                every: None,
                now,
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
}
