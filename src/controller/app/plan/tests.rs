//! The plan's decisions, from small fixtures.

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::{
    api::{M2MApp, M2MAppSpec},
    controller::app::observe::AppKeys,
    credentials::record::{Pending, Previous},
    tenancy::Refusal,
};

pub(crate) fn t(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

pub(crate) const UID: &str = "0b0e2f4a-0000-4000-8000-000000000001";

pub(crate) fn record() -> ClientRecord {
    serde_json::from_value(serde_json::json!({
        "clientId": crate::credentials::generate::client_id(UID),
        "app": {"namespace": "n", "name": "agent", "uid": UID},
        "current": "$argon2id$current", "revision": 1, "lastRotationTime": "1970-01-01T00:01:40Z"
    }))
    .unwrap()
}

pub(crate) fn app() -> M2MApp {
    let mut a = M2MApp::new(
        "agent",
        M2MAppSpec {
            audiences: vec!["api".into()],
            ..Default::default()
        },
    );
    a.metadata.namespace = Some("n".into());
    a.metadata.uid = Some(UID.into());
    a.metadata.generation = Some(4);
    a
}

fn ok() -> Result<Grant, Refusal> {
    Ok(Grant {
        org_code: None,
        scopes: vec![],
    })
}

/// The app's Secret holding `secret` (controlled by the app).
pub(crate) fn secret_of(app: &M2MApp, secret: &str, record: &ClientRecord) -> Secret {
    let endpoints = endpoints();
    let grant = ok().unwrap();
    let mut s = tenant_secret::render(
        app,
        &crate::credentials::generate::ClientSecret::new(secret),
        &content(&record.client_id, record.revision, &grant, &endpoints),
    )
    .unwrap();
    s.metadata.uid = Some("secret-uid".into());
    s.metadata.resource_version = Some("7".into());
    s
}

fn endpoints() -> Endpoints {
    Endpoints {
        issuer: "https://m2m.example.com".into(),
        token_url: "https://m2m.example.com/oauth2/token".into(),
    }
}

/// A world to plan in.
pub(crate) struct World {
    pub app: M2MApp,
    pub grant: Result<Grant, Refusal>,
    pub record: Option<ClientRecord>,
    pub secret: Option<Secret>,
    pub state: SecretState,
    pub vouched: bool,
    pub deferred: bool,
    pub org_uid: Option<String>,
    pub now: Timestamp,
}

impl World {
    /// An issued app whose Secret holds its current secret.
    pub fn issued() -> Self {
        let app = app();
        let record = record();
        let secret = secret_of(&app, "m2msec_current", &record);
        Self {
            app,
            grant: ok(),
            record: Some(record),
            secret: Some(secret),
            state: OURS_CURRENT,
            vouched: true,
            deferred: false,
            org_uid: None,
            now: t(200),
        }
    }

    pub fn observed(&self) -> Observed<'_> {
        Observed {
            app: &self.app,
            keys: AppKeys::of(&self.app).unwrap(),
            now: self.now,
            endpoints: endpoints(),
            grant: self.grant.clone(),
            block: None,
            org_uid: self.org_uid.clone(),
            record: self.record.clone(),
            record_secret: None,
            secret: self.secret.clone(),
            secret_state: self.state,
            secret_vouched: self.vouched,
            write_failure: None,
            secret_writes_deferred: self.deferred,
            template_refused: Vec::new(),
        }
    }

    pub fn plan(&self) -> Plan {
        plan(&self.observed())
    }

    pub fn annotate(&mut self, key: &str, value: &str) {
        self.app
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
    }
}

pub(crate) const OURS_CURRENT: SecretState = SecretState::Ours {
    matched: Some(SecretKind::Current),
    readable: true,
};

fn issue_cause(p: &Plan) -> Option<IssueCause> {
    match &p.step {
        Step::Issue { cause, .. } => Some(*cause),
        _ => None,
    }
}

#[test]
fn refused_or_foreign_touches_nothing() {
    let mut w = World::issued();
    w.grant = Err(Refusal::OrganizationNotFound { org: "x".into() });
    assert_eq!(w.plan().step, Step::Hold { record: None });
    let mut w = World::issued();
    w.state = SecretState::Foreign;
    assert_eq!(w.plan().step, Step::Hold { record: None });
}

#[test]
fn issues_when_missing_and_repairs_when_deleted_or_edited() {
    let mut w = World::issued();
    w.record = None;
    w.secret = None;
    w.state = SecretState::Missing;
    assert_eq!(issue_cause(&w.plan()), Some(IssueCause::First));
    let Step::Issue { draft, .. } = w.plan().step else {
        panic!("issue")
    };
    assert_eq!(draft.revision, 1);
    assert_eq!(
        draft.client_id,
        crate::credentials::generate::client_id(UID)
    );

    let mut w = World::issued();
    w.secret = None;
    w.state = SecretState::Missing;
    assert_eq!(issue_cause(&w.plan()), Some(IssueCause::SecretDeleted));

    for state in [
        SecretState::Ours {
            matched: None,
            readable: true,
        },
        SecretState::Ours {
            matched: None,
            readable: false,
        },
        SecretState::Ours {
            matched: Some(SecretKind::Previous),
            readable: true,
        },
    ] {
        let mut w = World::issued();
        w.state = state;
        assert_eq!(
            issue_cause(&w.plan()),
            Some(IssueCause::SecretEdited),
            "{state:?}"
        );
    }
}

#[test]
fn a_lost_record_is_rebuilt_only_from_a_secret_the_operator_wrote() {
    let mut w = World::issued();
    w.record = None;
    w.vouched = false;
    w.state = SecretState::Ours {
        matched: None,
        readable: true,
    };
    assert_eq!(issue_cause(&w.plan()), Some(IssueCause::SecretUnvouched));
}

#[test]
fn a_lost_record_is_recovered_from_an_intact_secret() {
    let mut w = World::issued();
    w.record = None;
    w.state = SecretState::Ours {
        matched: None,
        readable: true,
    };
    let Step::RecoverRecord { draft, sync } = w.plan().step else {
        panic!("recover: {:?}", w.plan())
    };
    assert_eq!(draft.revision, 1, "from the Secret's revision annotation");
    assert_eq!(sync, None, "the Secret already matches");
}

#[test]
fn keeps_a_matching_secret_and_cleans_the_record() {
    let w = World::issued();
    assert_eq!(
        w.plan().step,
        Step::Keep {
            record: None,
            sync: None
        }
    );
    let mut w = World::issued();
    let rec = w.record.as_mut().unwrap();
    rec.pending = Some(Pending {
        hash: rec.current.clone(),
        rotate_request: None,
        started_at: t(0),
    });
    rec.previous = Some(Previous {
        hash: rec.current.clone(),
        expires_at: t(300),
    });
    let Step::Keep {
        record: Some(cleaned),
        ..
    } = w.plan().step
    else {
        panic!("keep")
    };
    assert!(cleaned.pending.is_none(), "a stale pending hash goes");
    assert!(cleaned.previous.is_some(), "the grace period runs");
    w.now = t(300);
    let Step::Keep {
        record: Some(cleaned),
        ..
    } = w.plan().step
    else {
        panic!("keep")
    };
    assert!(cleaned.previous.is_none(), "an expired previous hash goes");
}

#[test]
fn a_secret_holding_the_pending_secret_finishes_the_rotation() {
    let mut w = World::issued();
    let rec = w.record.as_mut().unwrap();
    rec.pending = Some(Pending {
        hash: serde_json::from_value(serde_json::json!("$argon2id$pending")).unwrap(),
        rotate_request: Some("r1".into()),
        started_at: t(150),
    });
    w.state = SecretState::Ours {
        matched: Some(SecretKind::Pending),
        readable: true,
    };
    let Step::FinishRotation { record, .. } = w.plan().step else {
        panic!("finish")
    };
    assert_eq!(record.current.as_str(), "$argon2id$pending");
    assert_eq!(record.previous.unwrap().hash.as_str(), "$argon2id$current");
    assert_eq!(record.revision, 2);
    assert_eq!(record.last_rotation_time, t(150));
    assert_eq!(record.handled_rotate_request.as_deref(), Some("r1"));
}

#[test]
fn a_drifted_secret_is_synced_keeping_its_secret() {
    let mut w = World::issued();
    w.app.spec.audiences = vec!["other-api".into()];
    let Step::Keep {
        sync: Some(desired),
        ..
    } = w.plan().step
    else {
        panic!("keep with sync")
    };
    let data = desired.data.unwrap();
    assert_eq!(data["audience"].0, b"other-api");
    assert_eq!(data["client_secret"].0, b"m2msec_current");
}

#[test]
fn rotation_requests_and_schedules_rotate() {
    let mut w = World::issued();
    w.annotate("m2m.dev/rotate", "r1");
    let Step::Rotate {
        cause, promotion, ..
    } = w.plan().step
    else {
        panic!("rotate")
    };
    assert_eq!(cause, Cause::Requested("r1".into()));
    assert_eq!(
        promotion.previous_expires_at,
        Some(t(200 + 3600)),
        "the default grace period"
    );
    let mut w = World::issued();
    w.app.spec.rotation = Some(crate::api::RotationSpec {
        every: Some("1m".into()),
        grace_period: "0s".into(),
    });
    let Step::Rotate {
        cause, promotion, ..
    } = w.plan().step
    else {
        panic!("rotate")
    };
    assert_eq!(cause, Cause::Scheduled);
    assert_eq!(promotion.previous_expires_at, None, "grace 0s");
}

#[test]
fn planning_twice_on_the_same_world_decides_the_same() {
    for state in [SecretState::Missing, SecretState::Foreign, OURS_CURRENT] {
        let mut w = World::issued();
        w.state = state;
        assert_eq!(w.plan(), w.plan());
    }
}

/// The issued world with a previous secret in its grace period (until t=1000).
fn rotated_once() -> World {
    let mut w = World::issued();
    let rec = w.record.as_mut().unwrap();
    rec.previous = Some(Previous {
        hash: serde_json::from_value(serde_json::json!("$argon2id$older")).unwrap(),
        expires_at: t(1000),
    });
    rec.revision = 2;
    rec.handled_rotate_request = Some("r0".into());
    w.annotate("m2m.dev/rotate", "r0");
    w
}

fn rotate_step(p: &Plan) -> (&ClientRecord, &Promotion) {
    match &p.step {
        Step::Rotate {
            record, promotion, ..
        } => (record, promotion),
        other => panic!("rotate, not {other:?}"),
    }
}

#[test]
fn rotate_and_revoke_together_refuse_the_replaced_secret_at_once() {
    // The leak runbook in one command: both values new in one change.
    for revoke in ["leak1", "other"] {
        let mut w = rotated_once();
        w.annotate("m2m.dev/rotate", "leak1");
        w.annotate("m2m.dev/revoke-previous", revoke);
        let plan = w.plan();
        let (record, promotion) = rotate_step(&plan);
        assert_eq!(promotion.previous_expires_at, None, "revoke={revoke}");
        assert!(promotion.revokes_replaced);
        assert_eq!(promotion.handled_revoke.as_deref(), Some(revoke));
        // Step 1 of the rotation (the pending hash) does not mark the revocation handled: a
        // crash after it must not lose the revocation.
        assert_eq!(record.handled_revoke_request, None);
        let mut pending = record.clone();
        pending.pending = Some(Pending {
            hash: serde_json::from_value(serde_json::json!("$argon2id$new")).unwrap(),
            rotate_request: Some("leak1".into()),
            started_at: t(200),
        });
        let done = promote(pending, promotion);
        assert!(done.previous.is_none(), "neither old secret is accepted");
        assert_eq!(done.handled_rotate_request.as_deref(), Some("leak1"));
        assert_eq!(done.handled_revoke_request.as_deref(), Some(revoke));
    }
}

#[test]
fn the_same_value_revokes_the_rotated_secret_whichever_annotation_came_first() {
    // revoke-previous=leak1 was handled first (it ended the older grace period) ...
    let mut w = rotated_once();
    w.annotate("m2m.dev/revoke-previous", "leak1");
    let plan = w.plan();
    assert!(plan.revokes_previous);
    let Step::Keep {
        record: Some(revoked),
        ..
    } = plan.step
    else {
        panic!("keep")
    };
    assert!(revoked.previous.is_none());
    assert_eq!(revoked.handled_revoke_request.as_deref(), Some("leak1"));
    // ... then rotate=leak1 arrives: the secret it replaces is refused at once too.
    w.record = Some(revoked);
    w.annotate("m2m.dev/rotate", "leak1");
    let plan = w.plan();
    let (_, promotion) = rotate_step(&plan);
    assert_eq!(promotion.previous_expires_at, None);
    // A later rotation with another value keeps the usual grace period.
    let mut w = rotated_once();
    w.record.as_mut().unwrap().handled_revoke_request = Some("leak1".into());
    w.annotate("m2m.dev/revoke-previous", "leak1");
    w.annotate("m2m.dev/rotate", "routine");
    let plan = w.plan();
    let (_, promotion) = rotate_step(&plan);
    assert_eq!(promotion.previous_expires_at, Some(t(200 + 3600)));
}

#[test]
fn an_interrupted_rotation_with_a_revocation_finishes_with_the_old_secret_refused() {
    let mut w = rotated_once();
    w.annotate("m2m.dev/rotate", "leak1");
    w.annotate("m2m.dev/revoke-previous", "other");
    let rec = w.record.as_mut().unwrap();
    rec.pending = Some(Pending {
        hash: serde_json::from_value(serde_json::json!("$argon2id$new")).unwrap(),
        rotate_request: Some("leak1".into()),
        started_at: t(150),
    });
    w.state = SecretState::Ours {
        matched: Some(SecretKind::Pending),
        readable: true,
    };
    let plan = w.plan();
    assert!(plan.revokes_previous);
    let Step::FinishRotation { record, .. } = plan.step else {
        panic!("finish")
    };
    assert!(record.previous.is_none());
    assert_eq!(record.handled_revoke_request.as_deref(), Some("other"));
}

#[test]
fn a_revocation_takes_effect_while_the_app_is_not_ready() {
    for not_ready in ["conflict", "refused"] {
        let mut w = rotated_once();
        match not_ready {
            "conflict" => w.state = SecretState::Foreign,
            _ => w.grant = Err(Refusal::OrganizationNotFound { org: "gone".into() }),
        }
        w.annotate("m2m.dev/revoke-previous", "x");
        w.annotate("m2m.dev/rotate", "r9");
        let plan = w.plan();
        assert!(plan.revokes_previous, "{not_ready}");
        let Step::Hold {
            record: Some(record),
        } = plan.step
        else {
            panic!("hold with the revocation written: {not_ready}")
        };
        assert!(record.previous.is_none());
        assert_eq!(record.handled_revoke_request.as_deref(), Some("x"));
        assert_eq!(
            record.handled_rotate_request.as_deref(),
            Some("r0"),
            "the rotation waits: no Secret can be written"
        );
    }
}

#[test]
fn a_recovered_record_still_answers_a_rotation_asked_for_before_the_loss() {
    let mut w = World::issued();
    w.record = None;
    w.state = SecretState::Ours {
        matched: None,
        readable: true,
    };
    w.annotate("m2m.dev/rotate", "r1");
    let Step::RecoverRecord { draft, .. } = w.plan().step else {
        panic!("recover")
    };
    assert_eq!(draft.handled_rotate_request, None);
}

#[test]
fn while_a_secret_write_is_refused_nothing_is_hashed_or_written_but_revocations() {
    let mut w = World::issued();
    w.deferred = true;
    w.record = None;
    w.secret = None;
    w.state = SecretState::Missing;
    assert_eq!(w.plan().step, Step::Hold { record: None }, "no new secret");
    let mut w = rotated_once();
    w.deferred = true;
    w.app.spec.audiences = vec!["other-api".into()];
    w.annotate("m2m.dev/rotate", "r1");
    w.annotate("m2m.dev/revoke-previous", "x");
    let plan = w.plan();
    let Step::Keep {
        record: Some(record),
        sync: None,
    } = plan.step
    else {
        panic!("keep without a Secret write: {plan:?}")
    };
    assert!(plan.revokes_previous);
    assert!(record.previous.is_none());
    assert_eq!(
        record.handled_rotate_request.as_deref(),
        Some("r0"),
        "the rotation waits"
    );
}

#[test]
fn a_recreated_organization_gets_new_credentials_not_the_old_ones() {
    let mut w = World::issued();
    w.org_uid = Some("org-uid-2".into());
    w.record.as_mut().unwrap().organization_uid = Some("org-uid-1".into());
    let Step::Issue { cause, draft, .. } = w.plan().step else {
        panic!("issue")
    };
    assert_eq!(cause, IssueCause::OrganizationReplaced);
    assert_eq!(draft.organization_uid.as_deref(), Some("org-uid-2"));
    // A record from before the UID was recorded learns it, and keeps its secret.
    let mut w = World::issued();
    w.org_uid = Some("org-uid-2".into());
    let Step::Keep {
        record: Some(record),
        ..
    } = w.plan().step
    else {
        panic!("keep")
    };
    assert_eq!(record.organization_uid.as_deref(), Some("org-uid-2"));
    // The same Organization: nothing to do.
    let mut w = World::issued();
    w.org_uid = Some("org-uid-2".into());
    w.record.as_mut().unwrap().organization_uid = Some("org-uid-2".into());
    assert!(matches!(w.plan().step, Step::Keep { record: None, .. }));
}
