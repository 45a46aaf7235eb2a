//! Which step the plan takes: issue, repair, recovery, keep, finish, hold.

use super::*;
use crate::{
    credentials::record::{Pending, Previous},
    tenancy::Refusal,
};

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
    rec.pending = Some(Box::new(Pending {
        hash: rec.current.clone().unwrap(),
        rotate_request: None,
        started_at: t(0),
    }));
    rec.previous = Some(Box::new(Previous {
        hash: rec.current.clone().unwrap(),
        expires_at: t(300),
    }));
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
    rec.pending = Some(Box::new(Pending {
        hash: serde_json::from_value(serde_json::json!("$argon2id$pending")).unwrap(),
        rotate_request: Some("r1".into()),
        started_at: t(150),
    }));
    w.state = SecretState::Ours {
        matched: Some(SecretKind::Pending),
        readable: true,
    };
    let Step::FinishRotation { record, .. } = w.plan().step else {
        panic!("finish")
    };
    assert_eq!(
        record.current.as_ref().unwrap().as_str(),
        "$argon2id$pending"
    );
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
    w.app.spec.rotation = Some(Box::new(crate::api::RotationSpec {
        every: Some("1m".into()),
        grace_period: "0s".into(),
        retire_previous_when_unused_for: None,
    }));
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
