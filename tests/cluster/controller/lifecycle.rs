//! Deleting apps and Organizations, duplicate codes, suspension and disabling.

use std::time::Duration;

use kube::{Api, api::DeleteParams};
use m2m_operator::api::M2MApp;
use serde_json::json;

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    http,
    operator::Operator,
};

#[tokio::test]
async fn deleting_an_app_removes_its_secret_and_hashes() {
    let client = common::client().await;
    let _op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-delete").await;
    apply_app(&client, &ns.name, "doomed", json!({"audiences": ["api"]})).await;
    let app = wait_app_reason(&client, &ns.name, "doomed", "True", "CredentialsIssued").await;
    let apps: Api<M2MApp> = Api::namespaced(client.clone(), &ns.name);
    apps.delete("doomed", &DeleteParams::default())
        .await
        .expect("delete app");
    wait_for(
        "Secret garbage-collected and record removed",
        Duration::from_secs(30),
        || async {
            let secret = get_secret(&client, &ns.name, "doomed-credentials").await;
            let rec = record_secret(&client, &uid(&app)).await;
            if secret.is_none() && rec.is_none() {
                Ok(())
            } else {
                Err(format!(
                    "secret={} record={}",
                    secret.is_some(),
                    rec.is_some()
                ))
            }
        },
    )
    .await;
    ns.delete().await;
}

#[tokio::test]
async fn deleting_an_org_refuses_its_apps_but_keeps_their_secrets() {
    let client = common::client().await;
    let _op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-orgdel").await;
    let org = org_name("gone");
    apply_org(&client, &org, json!({"namespaces": [ns.name]})).await;
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({"organizationRef": {"name": org}, "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    delete_org(&client, &org).await;
    wait_app_reason(&client, &ns.name, "agent", "False", "OrganizationNotFound").await;
    assert!(
        get_secret(&client, &ns.name, "agent-credentials")
            .await
            .is_some(),
        "tenant Secret kept"
    );
    ns.delete().await;
}

/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test]
async fn duplicate_codes_suspension_and_disable() {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-dup").await;
    let code = format!("dup_{}", common::suffix());
    let older = org_name("older");
    let newer = org_name("newer");
    apply_org(
        &client,
        &older,
        json!({"code": code, "namespaces": [ns.name]}),
    )
    .await;
    wait_org_reason(&client, &older, "True", "Active").await;
    // A token for an app of the older one: the endpoint now knows which Organizations hold
    // the code, and must learn of every change to that from the watch.
    apply_app(
        &client,
        &ns.name,
        "original",
        json!({"organizationRef": {"name": older}, "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "original", "True", "CredentialsIssued").await;
    let (old_id, old_secret) = credentials(&client, &ns.name, "original").await;
    assert_eq!(
        http::token(&op.url(), &old_id, &old_secret, &[]).await.0,
        200
    );
    // creationTimestamp has one-second resolution; make "older" unambiguously older.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apply_org(
        &client,
        &newer,
        json!({"code": code, "namespaces": [ns.name]}),
    )
    .await;
    wait_org_reason(&client, &newer, "False", "DuplicateCode").await;
    apply_app(
        &client,
        &ns.name,
        "copycat",
        json!({"organizationRef": {"name": newer}, "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(
        &client,
        &ns.name,
        "copycat",
        "False",
        "OrganizationNotReady",
    )
    .await;
    // When the older one goes away, the code is free, for the controller and the endpoint.
    delete_org(&client, &older).await;
    wait_org_reason(&client, &newer, "True", "Active").await;
    wait_app_reason(&client, &ns.name, "copycat", "True", "CredentialsIssued").await;
    let (id, secret) = credentials(&client, &ns.name, "copycat").await;
    let (status, body) = http::token(&op.url(), &id, &secret, &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http::token(&op.url(), &old_id, &old_secret, &[]).await;
    assert!(
        status == 400 || status == 401,
        "the deleted Organization's app gets nothing: {status} {body}"
    );

    apply_org(
        &client,
        &newer,
        json!({"code": code, "namespaces": [ns.name], "suspended": true}),
    )
    .await;
    wait_app_reason(
        &client,
        &ns.name,
        "copycat",
        "False",
        "OrganizationSuspended",
    )
    .await;
    wait_org_reason(&client, &newer, "False", "Suspended").await;
    apply_org(
        &client,
        &newer,
        json!({"code": code, "namespaces": [ns.name]}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "copycat", "True", "CredentialsIssued").await;
    apply_app(
        &client,
        &ns.name,
        "copycat",
        json!({"organizationRef": {"name": newer}, "audiences": ["api"], "disabled": true}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "copycat", "False", "Disabled").await;
    assert!(
        get_secret(&client, &ns.name, "copycat-credentials")
            .await
            .is_some(),
        "credentials kept"
    );

    delete_org(&client, &newer).await;
    ns.delete().await;
}
