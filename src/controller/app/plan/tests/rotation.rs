//! Rotation and revocation: requests, schedules, leaks, not-Ready apps.

use super::*;
use crate::{credentials::record::Pending, tenancy::Refusal};

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
        pending.pending = Some(Box::new(Pending {
            hash: serde_json::from_value(serde_json::json!("$argon2id$new")).unwrap(),
            rotate_request: Some("leak1".into()),
            started_at: t(200),
        }));
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
    rec.pending = Some(Box::new(Pending {
        hash: serde_json::from_value(serde_json::json!("$argon2id$new")).unwrap(),
        rotate_request: Some("leak1".into()),
        started_at: t(150),
    }));
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
fn an_unused_previous_secret_is_retired_after_the_idle_time_and_not_before() {
    use crate::usage::report::PreviousUse;
    let used_at = |secs: u64| {
        let mut w = rotated_once();
        w.retire_unused_after = Some(std::time::Duration::from_secs(60));
        w.usage.previous_secret = Some(PreviousUse {
            revision: 2,
            uses: 3,
            last_used_at: secs,
        });
        w
    };
    // Used 50s before now (t(200)): not yet.
    let plan = used_at(150).plan();
    assert!(!plan.revokes_previous && !plan.retires_unused);
    assert!(
        matches!(plan.step, Step::Keep { record: None, .. }),
        "{:?}",
        plan.step
    );
    // Unused for 70s: retired, as an unused retirement (not a revocation request).
    let plan = used_at(130).plan();
    assert!(plan.revokes_previous && plan.retires_unused);
    let Step::Keep {
        record: Some(kept), ..
    } = &plan.step
    else {
        panic!("{:?}", plan.step)
    };
    assert!(kept.previous.is_none());
    assert_eq!(
        kept.handled_revoke_request, None,
        "no annotation was handled"
    );
    // Never used: counted from the rotation (t(100), 100s ago).
    let mut w = used_at(0);
    w.usage.previous_secret = None;
    assert!(w.plan().retires_unused);
    // An idle time that would end after the grace period changes nothing.
    let mut w = used_at(150);
    w.retire_unused_after = Some(std::time::Duration::from_secs(5000));
    assert!(!w.plan().revokes_previous);
    // No policy, or the reports not all read yet: nothing is retired.
    let mut w = used_at(0);
    w.retire_unused_after = None;
    assert!(!w.plan().revokes_previous);
}
