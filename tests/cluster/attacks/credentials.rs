//! Attacks on the credentials' lifecycle: deleted apps, expired and leaked secrets, revocation
//! while an app is not Ready, a Secret planted before the operator looks.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use super::{Arena, Creds, app_spec};
use crate::{common::wait_for, fixtures::*};

async fn annotate(arena: &Arena, ns: &str, app: &str, annotations: serde_json::Value) {
    let patch = json!({"metadata": {"annotations": annotations}});
    arena
        .apps_in(ns)
        .patch(app, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("annotating {ns}/{app}: {e}"));
}

/// Waits until the app's Secret holds a secret other than `old`; returns it.
async fn rotated_secret(arena: &mut Arena, ns: &str, app: &str, old: &str) -> String {
    let client = arena.client.clone();
    let new = wait_for("the rotated secret", Duration::from_secs(15), || async {
        let (_, s) = credentials(&client, ns, app).await;
        if s != old {
            Ok(s)
        } else {
            Err("not yet".into())
        }
    })
    .await;
    arena.sensitive.add(&new);
    new
}

/// An app of `acme` with a grace period of an hour, issued; its credentials.
async fn long_grace_app(arena: &mut Arena, name: &str) -> Creds {
    let (a, acme) = (arena.a.name.clone(), arena.acme.clone());
    let mut spec = app_spec(&acme, json!(["read"]));
    spec["rotation"] = json!({"gracePeriod": "1h"});
    apply_app(&arena.client, &a, name, spec).await;
    arena.issued(&a, name).await
}

#[tokio::test]
async fn a_deleted_apps_secret_is_refused() {
    let mut arena = Arena::new("atk-deleted").await;
    let a = arena.a.name.clone();
    let doomed = long_grace_app(&mut arena, "doomed").await;
    arena
        .apps_in(&a)
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    arena
        .wait_token(
            "a deleted app's secret to be refused",
            &doomed,
            401,
            Some("invalid_client"),
        )
        .await;
    arena.apps.retain(|(_, app)| app != "doomed");
    arena.finish().await;
}

#[tokio::test]
async fn the_previous_secret_is_refused_after_its_grace_period() {
    let mut arena = Arena::new("atk-grace").await;
    let (a, old) = (arena.a.name.clone(), arena.agent.clone());
    annotate(&arena, &a, "agent", json!({"m2m.dev/rotate": "attack-1"})).await;
    let new_secret = rotated_secret(&mut arena, &a, "agent", &old.secret).await;
    arena
        .wait_token("the previous secret to expire (3s)", &old, 401, None)
        .await;
    let new = Creds {
        id: old.id.clone(),
        secret: new_secret,
    };
    assert_eq!(arena.token(&new, &[]).await.0, 200);
    arena.remember_hashes(&a, "agent").await;
    arena.finish().await;
}

#[tokio::test]
async fn a_suspended_organizations_apps_are_refused() {
    let arena = Arena::new("atk-suspend").await;
    let (globex, code, b) = (
        arena.globex.clone(),
        arena.globex_code.clone(),
        arena.b.name.clone(),
    );
    apply_org(
        &arena.client,
        &globex,
        json!({"code": code, "namespaces": [b], "suspended": true}),
    )
    .await;
    let other = arena.other.clone();
    arena
        .wait_token("suspension", &other, 400, Some("unauthorized_client"))
        .await;
    arena.finish().await;
}

/// The leak runbook: rotate and revoke-previous with one value in one command. The leaked
/// (replaced) secret is refused at once, although the grace period is an hour.
#[tokio::test]
async fn rotate_and_revoke_in_one_command_refuse_the_leaked_secret_at_once() {
    let mut arena = Arena::new("atk-leak1").await;
    let a = arena.a.name.clone();
    let leaked = long_grace_app(&mut arena, "leaky").await;
    annotate(
        &arena,
        &a,
        "leaky",
        json!({"m2m.dev/rotate": "leak1", "m2m.dev/revoke-previous": "leak1"}),
    )
    .await;
    let new = Creds {
        id: leaked.id.clone(),
        secret: rotated_secret(&mut arena, &a, "leaky", &leaked.secret).await,
    };
    arena
        .wait_token("the leaked secret to be refused", &leaked, 401, None)
        .await;
    assert_eq!(arena.token(&new, &[]).await.0, 200, "the new secret works");
    let status = get_app(&arena.client, &a, "leaky").await.status.unwrap();
    let rotation = status.rotation.unwrap();
    assert_eq!(
        rotation.last_handled_rotate_request.as_deref(),
        Some("leak1")
    );
    assert_eq!(
        rotation.last_handled_revoke_request.as_deref(),
        Some("leak1")
    );
    assert_eq!(rotation.previous_secret_expires_at, None);
    arena.remember_hashes(&a, "leaky").await;
    arena.finish().await;
}

/// The same runbook typed as two commands in the other order: revoke-previous first (handled
/// at once, nothing to revoke yet), rotate with the same value later.
#[tokio::test]
async fn revoke_first_then_rotate_with_the_same_value_refuses_the_leaked_secret() {
    let mut arena = Arena::new("atk-leak2").await;
    let a = arena.a.name.clone();
    let leaked = long_grace_app(&mut arena, "leaky").await;
    annotate(
        &arena,
        &a,
        "leaky",
        json!({"m2m.dev/revoke-previous": "leak2"}),
    )
    .await;
    let client = arena.client.clone();
    wait_for(
        "the revocation handled",
        Duration::from_secs(15),
        || async {
            let app = get_app(&client, &a, "leaky").await;
            let handled = app
                .status
                .and_then(|s| s.rotation)
                .and_then(|r| r.last_handled_revoke_request);
            if handled.as_deref() == Some("leak2") {
                Ok(())
            } else {
                Err(format!("{handled:?}"))
            }
        },
    )
    .await;
    annotate(&arena, &a, "leaky", json!({"m2m.dev/rotate": "leak2"})).await;
    rotated_secret(&mut arena, &a, "leaky", &leaked.secret).await;
    arena
        .wait_token("the leaked secret to be refused", &leaked, 401, None)
        .await;
    arena.remember_hashes(&a, "leaky").await;
    arena.finish().await;
}

/// Someone strips the Secret's ownerReference (the app goes SecretConflict, and the endpoint
/// still accepts its secrets): a revocation, and `disabled`, still take effect.
#[tokio::test]
async fn revocation_and_disable_take_effect_while_the_secret_is_in_conflict() {
    let mut arena = Arena::new("atk-conflict").await;
    let a = arena.a.name.clone();
    let old = long_grace_app(&mut arena, "torn").await;
    annotate(&arena, &a, "torn", json!({"m2m.dev/rotate": "r1"})).await;
    let current = Creds {
        id: old.id.clone(),
        secret: rotated_secret(&mut arena, &a, "torn", &old.secret).await,
    };
    assert_eq!(arena.token(&old, &[]).await.0, 200, "in its grace period");
    arena.remember_hashes(&a, "torn").await;
    let secrets: Api<Secret> = Api::namespaced(arena.client.clone(), &a);
    secrets
        .patch(
            "torn-credentials",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"ownerReferences": null}})),
        )
        .await
        .expect("strip the ownerReference");
    wait_app_reason(&arena.client, &a, "torn", "False", "SecretConflict").await;

    annotate(&arena, &a, "torn", json!({"m2m.dev/revoke-previous": "x"})).await;
    arena
        .wait_token(
            "the previous secret revoked while in conflict",
            &old,
            401,
            None,
        )
        .await;
    assert_eq!(arena.token(&current, &[]).await.0, 200);

    let mut spec = app_spec(&arena.acme, json!(["read"]));
    spec["rotation"] = json!({"gracePeriod": "1h"});
    spec["disabled"] = json!(true);
    apply_app(&arena.client, &a, "torn", spec).await;
    arena
        .wait_token(
            "disabled while in conflict",
            &current,
            400,
            Some("unauthorized_client"),
        )
        .await;
    arena.finish().await;
}

/// A tenant pre-creates the app's Secret with a secret of their choice (the app goes
/// SecretConflict), then gives it a controller ownerReference to the app. The operator must
/// never accept a secret it did not generate.
#[tokio::test]
async fn a_planted_secret_never_becomes_credentials() {
    let mut arena = Arena::new("atk-plant").await;
    let (a, acme) = (arena.a.name.clone(), arena.acme.clone());
    let secrets: Api<Secret> = Api::namespaced(arena.client.clone(), &a);
    let weak = "m2msec_planted_weak_secret";
    let planted = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("planted-credentials".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "client_secret".to_owned(),
            ByteString(weak.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &planted)
        .await
        .expect("plant a Secret");
    apply_app(
        &arena.client,
        &a,
        "planted",
        app_spec(&acme, json!(["read"])),
    )
    .await;
    let app = wait_app_reason(&arena.client, &a, "planted", "False", "SecretConflict").await;
    let owner = json!({"metadata": {"ownerReferences": [{
        "apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp", "name": "planted",
        "uid": uid(&app), "controller": true}]}});
    secrets
        .patch(
            "planted-credentials",
            &PatchParams::default(),
            &Patch::Merge(&owner),
        )
        .await
        .expect("adopt the planted Secret");
    let issued = arena.issued(&a, "planted").await;
    assert_ne!(issued.secret, weak, "the planted secret was replaced");
    let planted = Creds {
        id: issued.id.clone(),
        secret: weak.to_owned(),
    };
    let (status, body) = arena.token(&planted, &[]).await;
    assert_eq!(status, 401, "the planted secret gets no token: {body}");
    assert_eq!(arena.token(&issued, &[]).await.0, 200);
    arena.finish().await;
}
