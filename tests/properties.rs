//! Property tests of the pure decision code (proptest): for any inputs,
//! - a token never carries a scope outside the app's and its organization's;
//! - the rotation policy never ends a grace period early on its own, and the previous secret is
//!   accepted for exactly its grace period;
//! - the plan functions are idempotent: applying a plan's result and planning again changes
//!   nothing;
//! - the signing-key plan publishes a key before it signs and keeps it while its tokens live.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use m2m_operator::{
    api::RotationSpec,
    api::{M2MApp, Organization},
    controller::app::{
        observe::{AppKeys, Observed},
        plan::{self, SecretState, Step},
        status::{self as app_status, StatusInputs},
    },
    credentials::{
        hash::PhcHash,
        record::{ClientRecord, Previous, SecretKind},
    },
    rotation,
    tenancy::{self, OrgState},
    token::{
        claims,
        http::request::TokenRequest,
        jwt::{Algorithm, KeyError},
        signing_keys::{KeyPolicy, StoredKeySet, lifecycle as keys},
    },
};
use proptest::prelude::*;
use serde_json::json;

const NS: &str = "tenant";

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn scope() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "read:x", "write:y", "admin"]).prop_map(String::from)
}

fn scopes() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(scope(), 0..6)
}

fn app(org: Option<&str>, scopes: &[String]) -> M2MApp {
    let mut spec = json!({"scopes": scopes, "audiences": ["https://api.example.com"]});
    if let Some(org) = org {
        spec["organizationRef"] = json!({"name": org});
    }
    serde_json::from_value(json!({
        "apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
        "metadata": {"name": "app", "namespace": NS, "uid": "u-1", "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

fn org(ceiling: Option<&[String]>) -> Organization {
    let mut spec = json!({"code": "org_1", "namespaces": [NS]});
    if let Some(ceiling) = ceiling {
        spec["allowedScopes"] = json!(ceiling);
    }
    serde_json::from_value(json!({
        "apiVersion": "m2m.dev/v1alpha1", "kind": "Organization",
        "metadata": {"name": "org", "uid": "o-1", "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

fn hash(n: u8) -> PhcHash {
    serde_json::from_value(json!(format!(
        "$argon2id$v=19$m=19456,t=2,p=1${}$abc{n}",
        "c2FsdHNhbHQ"
    )))
    .unwrap()
}

fn record(last_rotation: i64, previous: Option<Previous>) -> ClientRecord {
    serde_json::from_value(json!({
        "clientId": "m2m_1", "app": {"namespace": NS, "name": "app", "uid": "u-1"},
        "current": hash(1), "revision": 2, "lastRotationTime": t(last_rotation),
        "previous": previous,
    }))
    .unwrap()
}

proptest! {
    #[test]
    fn a_token_never_carries_a_scope_outside_the_app_and_the_org(
        app_scopes in scopes(),
        ceiling in prop::option::of(scopes()),
        requested in prop::option::of(scopes()),
        bound in any::<bool>(),
    ) {
        let organization = org(ceiling.as_deref());
        let app = app(bound.then_some("org"), &app_scopes);
        let org_arg = bound.then_some((&organization, &OrgState::Active));
        let grant = match tenancy::grant(&app, org_arg, None, &tenancy::GlobalApps::anywhere()) {
            Ok(grant) => grant,
            Err(_) => {
                // Refused only when the app asks for more than the org allows.
                let ceiling = ceiling.as_ref().expect("refused only with a ceiling");
                prop_assert!(bound && app_scopes.iter().any(|s| !ceiling.contains(s)));
                return Ok(());
            }
        };
        prop_assert_eq!(grant.org_code.is_some(), bound);
        let request = TokenRequest { scope: requested.clone(), audiences: Vec::new() };
        match claims::narrow(&grant, &app, &request) {
            Ok(granted) => {
                for s in &granted.scopes {
                    prop_assert!(app_scopes.contains(s), "{s} is the app's");
                    if let (true, Some(ceiling)) = (bound, &ceiling) {
                        prop_assert!(ceiling.contains(s), "{s} is within the org's ceiling");
                    }
                    if let Some(requested) = &requested {
                        prop_assert!(requested.contains(s), "{s} was asked for");
                    }
                }
            }
            Err(_) => {
                let requested = requested.expect("refused only a request that names scopes");
                prop_assert!(requested.iter().any(|s| !grant.scopes.contains(s)));
            }
        }
    }

    #[test]
    fn the_previous_secret_works_for_exactly_its_grace_period(
        rotated_at in 0i64..2_000_000_000,
        grace in 0u64..(720 * 3600),
        later in 0i64..(800 * 3600),
        every in prop::option::of(60u64..(800 * 3600)),
    ) {
        let expires = rotation::previous_expires_at(t(rotated_at), Duration::from_secs(grace));
        let rec = record(
            rotated_at,
            expires.map(|expires_at| Previous { hash: hash(0), expires_at }),
        );
        let now = t(rotated_at + later);
        let in_grace = later < grace as i64;
        let accepted = rec
            .accepted_hashes(now)
            .any(|(_, kind)| kind == SecretKind::Previous);
        prop_assert_eq!(accepted, in_grace);

        // Neither the plan nor the rotation policy ends the grace period early on its own.
        let mut app = app(None, &[]);
        app.spec.rotation = Some(Box::new(RotationSpec {
            every: every.map(|e| format!("{e}s")),
            grace_period: format!("{grace}s"),
            retire_previous_when_unused_for: None,
        }));
        let observed = Observed {
            app: &app,
            keys: AppKeys::of(&app).unwrap(),
            now,
            endpoints: m2m_operator::credentials::secret::Endpoints {
                issuer: "https://m2m.example.com".into(),
                token_url: "https://m2m.example.com/oauth2/token".into(),
            },
            grant: Ok(tenancy::Grant { org_code: None, scopes: Vec::new() }),
            block: None,
            org_uid: None,
            record: Some(rec.clone()),
            record_version: None,
            secret: None,
            secret_state: SecretState::Ours { matched: Some(SecretKind::Current), readable: true },
            secret_vouched: true,
            write_failure: None,
            secret_writes_deferred: false,
            template_refused: Vec::new(),
            usage: Default::default(),
            retire_unused_after: None,
        };
        let plan = plan::plan(&observed);
        prop_assert!(!plan.revokes_previous);
        if in_grace {
            prop_assert_eq!(plan.step, Step::Keep { record: None, sync: None });
        } else if let Step::Keep { record: Some(kept), .. } = &plan.step {
            prop_assert!(kept.previous.is_none(), "an expired previous hash is dropped");
        }
        let every = every.map(Duration::from_secs);
        let decision = rotation::decide(&rec, None, None, every, now);
        prop_assert_eq!(decision.revoke_previous, None);
        if in_grace {
            prop_assert_eq!(decision.rotate, None, "no scheduled rotation during a grace period");
        }
    }

    #[test]
    fn the_app_status_plan_is_idempotent(
        app_scopes in scopes(),
        bound in any::<bool>(),
        disabled in any::<bool>(),
        has_record in any::<bool>(),
        conflict in any::<bool>(),
        secs in 0i64..2_000_000_000,
    ) {
        let organization = org(None);
        let mut app = app(bound.then_some("org"), &app_scopes);
        app.spec.disabled = disabled;
        let grant = tenancy::grant(
            &app,
            bound.then_some((&organization, &OrgState::Active)),
            None,
            &tenancy::GlobalApps::anywhere(),
        );
        let block = tenancy::block(&app, bound.then_some(&organization));
        let rec = record(secs, None);
        let inputs = |app: &M2MApp, now: Timestamp| {
            app_status::status(&StatusInputs {
                app,
                grant: &grant,
                block,
                record: has_record.then_some(&rec),
                conflict,
                now,
                verified_secret: None,
                write_failure: None,
                template_refused: &[],
                quota_reported: None,
                previous_reported: None,
            })
        };
        let first = inputs(&app, t(secs));
        app.status = Some(first.clone());
        // Planning again, later, from the status just written changes nothing (no new
        // transition times, no flapping).
        let second = inputs(&app, t(secs + 3600));
        prop_assert_eq!(first, second);
    }

    #[test]
    fn signing_keys_are_published_before_they_sign_and_kept_while_their_tokens_live(
        steps in prop::collection::vec((1i64..(48 * 3600), prop::option::of(0u8..4)), 1..40),
        rotate_hours in 2u64..200,
        ahead_mins in 1u64..120,
        keep_hours in 1u64..48,
    ) {
        let policy = KeyPolicy {
            alg: Algorithm::ES256,
            rotate_every: Duration::from_secs(rotate_hours * 3600),
            publish_ahead: Duration::from_secs(ahead_mins * 60),
            keep_retired: Duration::from_secs(keep_hours * 3600),
        };
        let mut counter = 0u32;
        let mut generate = |_: Algorithm| -> Result<Vec<u8>, KeyError> {
            counter += 1;
            Ok(counter.to_be_bytes().to_vec())
        };
        let mut now = 1_000_000i64;
        let mut set: Option<StoredKeySet> = None;
        // pkcs8 -> (first seen, last time it signed)
        let mut seen: std::collections::HashMap<String, (i64, Option<i64>)> = Default::default();
        let mut first_key: Option<String> = None;
        for (advance, request) in steps {
            now += advance;
            let request = request.map(|r| r.to_string());
            if let Some(next) = keys::plan(set.as_ref(), request.as_deref(), &policy, t(now), &mut generate).unwrap() {
                set = Some(next);
            }
            let current = set.as_ref().expect("a key set exists after the first plan");
            // Idempotent: planning again at the same instant writes nothing.
            prop_assert!(keys::plan(Some(current), request.as_deref(), &policy, t(now), &mut generate).unwrap().is_none());
            for key in &current.keys {
                seen.entry(key.pkcs8.clone()).or_insert((now, None));
            }
            let active = keys::active_index(&current.keys, t(now)).expect("a key signs");
            let signer = &current.keys[active];
            let first_key = first_key.get_or_insert_with(|| current.keys[0].pkcs8.clone());
            if &signer.pkcs8 != first_key {
                // Every key but the very first was in the published set at least
                // `publish_ahead` before it started signing.
                let published_for = signer.active_from.as_second() - seen[&signer.pkcs8].0;
                prop_assert!(published_for >= (ahead_mins * 60) as i64, "published {published_for}s ahead");
            }
            seen.get_mut(&signer.pkcs8).unwrap().1 = Some(now);
            // A key that signed at `s` is still published while a token from `s` may live.
            for (pkcs8, (_, last_signed)) in &seen {
                if let Some(s) = last_signed
                    && now < s + (keep_hours * 3600) as i64
                {
                    prop_assert!(
                        current.keys.iter().any(|k| &k.pkcs8 == pkcs8),
                        "a key that signed at {s} is gone at {now}"
                    );
                }
            }
        }
    }
}
