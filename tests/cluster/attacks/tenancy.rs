//! Attacks on the tenant binding: the wrong namespace, another Organization, more scopes, claims
//! as request parameters, another app's secret.

use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::{Arena, app_spec};
use crate::{common::TEST_MANAGER, fixtures::*, http, operator::ISSUER};

#[tokio::test]
async fn an_app_in_a_namespace_its_organization_does_not_allow_gets_nothing() {
    let mut arena = Arena::new("atk-ns").await;
    let (b, acme) = (arena.b.name.clone(), arena.acme.clone());
    apply_app(
        &arena.client,
        &b,
        "intruder",
        app_spec(&acme, json!(["read"])),
    )
    .await;
    wait_app_reason(
        &arena.client,
        &b,
        "intruder",
        "False",
        "NamespaceNotAllowed",
    )
    .await;
    assert!(
        get_secret(&arena.client, &b, "intruder-credentials")
            .await
            .is_none(),
        "no credentials for a namespace the org does not allow"
    );
    arena.apps.push((b, "intruder".into()));
    arena.finish().await;
}

#[tokio::test]
async fn an_app_cannot_move_to_another_organization() {
    let arena = Arena::new("atk-move").await;
    let moved = json!({"apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
        "metadata": {"name": "agent"}, "spec": app_spec(&arena.globex, json!(["read"]))});
    let err = arena
        .apps_in(&arena.a.name)
        .patch(
            "agent",
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&moved),
        )
        .await
        .expect_err("organizationRef is immutable");
    assert!(err.to_string().contains("immutable"), "{err}");
    arena.finish().await;
}

#[tokio::test]
async fn scopes_beyond_the_app_or_the_organization_are_refused() {
    let mut arena = Arena::new("atk-scope").await;
    let agent = arena.agent.clone();
    let (status, body) = arena.token(&agent, &[("scope", "write")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (a, acme) = (arena.a.name.clone(), arena.acme.clone());
    apply_app(
        &arena.client,
        &a,
        "greedy",
        app_spec(&acme, json!(["read", "admin"])),
    )
    .await;
    wait_app_reason(&arena.client, &a, "greedy", "False", "ScopesNotAllowed").await;
    assert!(
        get_secret(&arena.client, &a, "greedy-credentials")
            .await
            .is_none()
    );
    arena.apps.push((a, "greedy".into()));
    arena.finish().await;
}

#[tokio::test]
async fn claims_sent_as_request_parameters_change_nothing() {
    let mut arena = Arena::new("atk-claims").await;
    let agent = arena.agent.clone();
    let globex_code = arena.globex_code.clone();
    let (status, body) = arena
        .token(
            &agent,
            &[
                ("org_code", &globex_code),
                ("sub", "admin"),
                ("iss", "https://evil.example.com"),
                ("exp", "9999999999"),
                ("scope", "read"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let claims = http::verify(&arena.op.url(), ISSUER, &token).await.unwrap();
    assert_eq!(claims["org_code"], arena.acme_code.as_str());
    assert_eq!(claims["sub"], agent.id.as_str());
    assert_eq!(claims["iss"], ISSUER);
    assert!(claims["exp"].as_i64().unwrap() < 9_999_999_999);
    arena.finish().await;
}

#[tokio::test]
async fn another_apps_secret_or_a_secret_as_client_id_is_refused() {
    let mut arena = Arena::new("atk-cross").await;
    let crossed = super::Creds {
        id: arena.other.id.clone(),
        secret: arena.agent.secret.clone(),
    };
    let (status, body) = arena.token(&crossed, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // A client that pastes its secret into the client_id field: refused, and not logged.
    let secret = arena.agent.secret.clone();
    let (status, body) = http::post_form(
        &format!("{}/oauth2/token", arena.op.url()),
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &secret),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    arena
        .bodies
        .push(("a secret as client_id".into(), body.to_string()));
    arena.finish().await;
}

/// Global apps (no Organization: tokens without org_code, any scope) only where the operator
/// allows them: by default its own namespace. Elsewhere no Secret, and no token even for a
/// global app issued before the policy was in force.
#[tokio::test]
async fn a_global_app_outside_the_allowed_namespaces_gets_no_secret_and_no_token() {
    // First an operator that allows global apps in the test namespaces issues one ...
    let mut arena = Arena::new("atk-global").await;
    let a = arena.a.name.clone();
    let spec = json!({"scopes": ["admin"], "audiences": ["https://api.example.com"]});
    apply_app(&arena.client, &a, "old-global", spec.clone()).await;
    let old = arena.issued(&a, "old-global").await;
    assert_eq!(arena.token(&old, &[]).await.0, 200);

    // ... then the operator runs with its default policy (global apps in its namespace only).
    arena.op.terminate();
    let options = crate::operator::Options {
        global_apps_in_test_namespaces: false,
        ..Default::default()
    };
    arena.op = crate::operator::Operator::start_with(&arena.client, options).await;
    apply_app(&arena.client, &a, "new-global", spec.clone()).await;
    let refused = wait_app_reason(
        &arena.client,
        &a,
        "new-global",
        "False",
        "NamespaceNotAllowed",
    )
    .await;
    let message = &refused.status.unwrap().conditions[0].message;
    assert!(message.contains("global app"), "{message}");
    assert!(
        get_secret(&arena.client, &a, "new-global-credentials")
            .await
            .is_none(),
        "no Secret for a global app outside the allowed namespaces"
    );
    arena.apps.push((a.clone(), "new-global".into()));
    wait_app_reason(
        &arena.client,
        &a,
        "old-global",
        "False",
        "NamespaceNotAllowed",
    )
    .await;
    let (status, body) = arena.token(&old, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "the endpoint refuses it: {body}"
    );

    // In the operator's own namespace a global app works.
    let own = crate::operator::OPERATOR_NAMESPACE;
    let name = format!("platform-job-{}", crate::common::suffix());
    apply_app(&arena.client, own, &name, spec).await;
    let job = arena.issued(own, &name).await;
    let (status, body) = arena.token(&job, &[]).await;
    assert_eq!(status, 200, "{body}");
    let claims = http::verify(
        &arena.op.url(),
        ISSUER,
        body["access_token"].as_str().unwrap(),
    )
    .await
    .unwrap();
    assert!(claims.get("org_code").is_none());
    arena
        .apps_in(own)
        .delete(&name, &Default::default())
        .await
        .unwrap();
    arena.apps.retain(|(_, app)| *app != name);
    arena.finish().await;
}

/// A template key that makes another tool copy the Secret away (a replicator's annotation) is
/// refused: no Secret for a new app, and an issued app's Secret does not get it.
#[tokio::test]
async fn secret_template_keys_that_copy_the_secret_away_are_refused() {
    let mut arena = Arena::new("atk-template").await;
    let (a, acme) = (arena.a.name.clone(), arena.acme.clone());
    let replicate = |mut spec: serde_json::Value| {
        spec["secretTemplate"] =
            json!({"annotations": {"replicator.v1.mittwald.de/replicate-to": "*"}});
        spec
    };
    apply_app(
        &arena.client,
        &a,
        "copied",
        replicate(app_spec(&acme, json!(["read"]))),
    )
    .await;
    let app = wait_app_reason(
        &arena.client,
        &a,
        "copied",
        "False",
        "SecretTemplateNotAllowed",
    )
    .await;
    let message = &app.status.unwrap().conditions[0].message;
    assert!(
        message.contains("replicator.v1.mittwald.de/replicate-to"),
        "{message}"
    );
    assert!(
        get_secret(&arena.client, &a, "copied-credentials")
            .await
            .is_none()
    );
    arena.apps.push((a.clone(), "copied".into()));

    // The issued app `agent` asks for the annotation later: its Secret stays as it was and its
    // secret keeps working.
    apply_app(
        &arena.client,
        &a,
        "agent",
        replicate(app_spec(&acme, json!(["read"]))),
    )
    .await;
    wait_app_reason(
        &arena.client,
        &a,
        "agent",
        "False",
        "SecretTemplateNotAllowed",
    )
    .await;
    let secret = get_secret(&arena.client, &a, "agent-credentials")
        .await
        .unwrap();
    let annotations = secret.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key("replicator.v1.mittwald.de/replicate-to"),
        "{annotations:?}"
    );
    let agent = arena.agent.clone();
    assert_eq!(arena.token(&agent, &[]).await.0, 200);
    arena.finish().await;
}
