//! Apps without the `ClientSecret` method: no secret issued, an existing one retired with the
//! grace period, and a fresh one issued when the method comes back.

use super::*;
use crate::{
    api::{AuthMethod, ClientAuthentication},
    controller::app::plan::keyless::{KeylessChange, has_client_secret},
    credentials::record::Pending,
};

fn keyless(w: &mut World) {
    w.app.spec.client_authentication = Some(Box::new(ClientAuthentication {
        methods: vec![AuthMethod::ServiceAccountToken],
        service_account_names: vec!["agent".into()],
        jwks: None,
    }));
}

fn step(p: &Plan) -> (KeylessChange, Option<&ClientRecord>, Option<&Secret>) {
    match &p.step {
        Step::Keyless {
            change,
            record,
            secret,
        } => (*change, record.as_ref(), secret.as_ref()),
        other => panic!("keyless, not {other:?}"),
    }
}

#[test]
fn a_new_keyless_app_gets_a_record_without_a_hash_and_a_secret_without_client_secret() {
    let mut w = World::issued();
    keyless(&mut w);
    w.record = None;
    w.secret = None;
    w.state = SecretState::Missing;
    let p = w.plan();
    let (change, record, secret) = step(&p);
    assert_eq!(change, KeylessChange::Issued);
    let record = record.expect("a record");
    assert_eq!(record.current, None);
    assert_eq!(record.accepted_hashes(w.now).count(), 0);
    assert_eq!(
        record.client_id,
        crate::credentials::generate::client_id(UID)
    );
    let secret = secret.expect("a Secret");
    assert!(!has_client_secret(secret));
    assert!(secret.data.as_ref().unwrap().contains_key("client_id"));
}

#[test]
fn switching_to_keyless_retires_the_secret_with_the_grace_period() {
    let mut w = World::issued();
    keyless(&mut w);
    let p = w.plan();
    let (change, record, secret) = step(&p);
    assert_eq!(change, KeylessChange::SecretRetired);
    let record = record.expect("the record changes");
    assert_eq!(record.current, None);
    assert_eq!(record.revision, 2);
    let previous = record.previous.as_ref().expect("the old secret in grace");
    assert_eq!(previous.hash.as_str(), "$argon2id$current");
    assert_eq!(previous.expires_at, t(200 + 3600));
    assert!(!has_client_secret(secret.expect("the Secret is rewritten")));

    // A grace period of 0s: refused at once.
    let mut w = World::issued();
    keyless(&mut w);
    w.app.spec.rotation = Some(Box::new(crate::api::RotationSpec {
        every: None,
        grace_period: "0s".into(),
        retire_previous_when_unused_for: None,
    }));
    let p = w.plan();
    assert_eq!(step(&p).1.unwrap().previous, None);
}

#[test]
fn the_retired_secret_is_the_one_the_secret_holds_and_can_be_revoked() {
    // A rotation was interrupted after the Secret got the pending secret.
    let mut w = World::issued();
    keyless(&mut w);
    let pending: crate::credentials::hash::PhcHash =
        serde_json::from_value(serde_json::json!("$argon2id$pending")).unwrap();
    w.record.as_mut().unwrap().pending = Some(Box::new(Pending {
        hash: pending.clone(),
        rotate_request: None,
        started_at: t(150),
    }));
    w.state = SecretState::Ours {
        matched: Some(SecretKind::Pending),
        readable: true,
    };
    let p = w.plan();
    let record = step(&p).1.unwrap();
    assert_eq!(record.previous.as_ref().unwrap().hash, pending);
    assert_eq!(record.pending, None);

    let mut w = World::issued();
    keyless(&mut w);
    w.annotate("m2m.dev/revoke-previous", "leak");
    let p = w.plan();
    assert!(p.revokes_previous);
    let record = step(&p).1.unwrap();
    assert_eq!(record.previous, None);
    assert_eq!(record.handled_revoke_request.as_deref(), Some("leak"));
}

#[test]
fn a_settled_keyless_app_writes_nothing_and_drops_an_expired_secret() {
    let mut w = World::issued();
    keyless(&mut w);
    let retired = step(&w.plan()).1.unwrap().clone();
    let desired = step(&w.plan()).2.unwrap().clone();
    w.record = Some(retired);
    w.secret = Some(desired);
    w.state = SecretState::Ours {
        matched: None,
        readable: false,
    };
    let p = w.plan();
    assert_eq!(step(&p), (KeylessChange::Kept, None, None));

    w.now = t(200 + 3600);
    let p = w.plan();
    let (change, record, secret) = step(&p);
    assert_eq!(change, KeylessChange::Kept);
    assert_eq!(record.unwrap().previous, None, "the grace period is over");
    assert_eq!(secret, None);

    // A rotation request has nothing to rotate; it is recorded as handled.
    w.annotate("m2m.dev/rotate", "1");
    let p = w.plan();
    assert_eq!(
        step(&p).1.unwrap().handled_rotate_request.as_deref(),
        Some("1")
    );
}

#[test]
fn a_client_secret_put_back_by_hand_is_removed_again() {
    let mut w = World::issued();
    keyless(&mut w);
    w.record.as_mut().unwrap().current = None;
    let p = w.plan();
    let (change, record, secret) = step(&p);
    assert_eq!(change, KeylessChange::Kept);
    assert_eq!(record, None);
    assert!(!has_client_secret(secret.expect("rewritten")));
}

#[test]
fn keyless_apps_never_take_over_a_foreign_secret_or_write_when_refused() {
    let mut w = World::issued();
    keyless(&mut w);
    w.state = SecretState::Foreign;
    assert_eq!(w.plan().step, Step::Hold { record: None });
    let mut w = World::issued();
    keyless(&mut w);
    w.grant = Err(Refusal::OrganizationNotFound { org: "x".into() });
    assert_eq!(w.plan().step, Step::Hold { record: None });
    // Secret writes deferred: the secret is still retired (the spec says no secret), the
    // Secret waits.
    let mut w = World::issued();
    keyless(&mut w);
    w.deferred = true;
    let p = w.plan();
    assert_eq!(step(&p).0, KeylessChange::SecretRetired);
    assert_eq!(step(&p).2, None);
}

#[test]
fn enabling_client_secret_again_issues_a_fresh_secret_of_a_new_revision() {
    let mut w = World::issued();
    let rec = w.record.as_mut().unwrap();
    rec.current = None;
    rec.revision = 2;
    w.state = SecretState::Ours {
        matched: None,
        readable: false,
    };
    assert_eq!(issue_cause(&w.plan()), Some(IssueCause::MethodEnabled));
    let Step::Issue { draft, .. } = w.plan().step else {
        panic!("issue")
    };
    assert_eq!(draft.revision, 3);
    w.state = SecretState::Missing;
    assert_eq!(issue_cause(&w.plan()), Some(IssueCause::MethodEnabled));
    w.state = SecretState::Foreign;
    assert_eq!(w.plan().step, Step::Hold { record: None });
}
