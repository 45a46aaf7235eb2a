//! The token endpoint of a running operator, fed by the real API server, over real HTTP.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use m2m_operator::api::M2MApp;
use serde_json::json;

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    http,
    operator::{ISSUER, OPERATOR_NAMESPACE, Operator, Options},
};

/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test]
async fn apps_get_verifiable_tokens_and_suspension_disable_and_deletion_take_effect() {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-token").await;
    let org = org_name("tokens");
    let code = format!("org_{}", common::suffix());
    apply_org(
        &client,
        &org,
        json!({"code": code, "namespaces": [ns.name]}),
    )
    .await;
    apply_app(&client, &ns.name, "tenant-agent", json!({"organizationRef": {"name": org}, "scopes": ["read:users", "write:flags"], "audiences": ["https://api.example.com"], "tokenLifetime": "10m"})).await;
    apply_app(
        &client,
        &ns.name,
        "platform-job",
        json!({"scopes": ["admin"], "audiences": ["https://billing.example.com"]}),
    )
    .await;
    wait_app_reason(
        &client,
        &ns.name,
        "tenant-agent",
        "True",
        "CredentialsIssued",
    )
    .await;
    wait_app_reason(
        &client,
        &ns.name,
        "platform-job",
        "True",
        "CredentialsIssued",
    )
    .await;
    let (tenant_id, tenant_secret) = credentials(&client, &ns.name, "tenant-agent").await;
    let (global_id, global_secret) = credentials(&client, &ns.name, "platform-job").await;

    let (status, body) = http::token(
        &op.url(),
        &tenant_id,
        &tenant_secret,
        &[("org_code", "org_evil")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let claims = http::verify(&op.url(), ISSUER, body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims["org_code"], code.as_str());
    assert_eq!(claims["scope"], "read:users write:flags");
    assert_eq!(claims["aud"], "https://api.example.com");
    assert_eq!(claims["sub"], tenant_id.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );

    let (status, body) = http::token(&op.url(), &global_id, &global_secret, &[]).await;
    assert_eq!(status, 200, "{body}");
    let claims = http::verify(&op.url(), ISSUER, body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert!(
        claims.get("org_code").is_none(),
        "a global app's token has no org_code: {claims}"
    );

    // Suspend: refused after authentication; unsuspend: works again.
    apply_org(
        &client,
        &org,
        json!({"code": code, "namespaces": [ns.name], "suspended": true}),
    )
    .await;
    wait_for(
        "suspension to refuse tokens",
        Duration::from_secs(10),
        || async {
            let (status, body) = http::token(&op.url(), &tenant_id, &tenant_secret, &[]).await;
            if status == 400 && body["error"] == "unauthorized_client" {
                Ok(())
            } else {
                Err(format!("{status} {body}"))
            }
        },
    )
    .await;
    apply_org(
        &client,
        &org,
        json!({"code": code, "namespaces": [ns.name]}),
    )
    .await;
    wait_for(
        "un-suspension to allow tokens",
        Duration::from_secs(10),
        || async {
            let (status, body) = http::token(&op.url(), &tenant_id, &tenant_secret, &[]).await;
            if status == 200 {
                Ok(())
            } else {
                Err(format!("{status} {body}"))
            }
        },
    )
    .await;

    // Disable the global app.
    apply_app(&client, &ns.name, "platform-job", json!({"scopes": ["admin"], "audiences": ["https://billing.example.com"], "disabled": true})).await;
    wait_for(
        "disable to refuse tokens",
        Duration::from_secs(10),
        || async {
            let (status, body) = http::token(&op.url(), &global_id, &global_secret, &[]).await;
            if status == 400 && body["error"] == "unauthorized_client" {
                Ok(())
            } else {
                Err(format!("{status} {body}"))
            }
        },
    )
    .await;

    // Delete the tenant app: its credentials no longer get tokens.
    let apps: Api<M2MApp> = Api::namespaced(client.clone(), &ns.name);
    apps.delete("tenant-agent", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        "a deleted app's secret to be refused",
        Duration::from_secs(10),
        || async {
            let (status, body) = http::token(&op.url(), &tenant_id, &tenant_secret, &[]).await;
            if status == 401 && body["error"] == "invalid_client" {
                Ok(())
            } else {
                Err(format!("{status} {body}"))
            }
        },
    )
    .await;

    delete_org(&client, &org).await;
    ns.delete().await;
}

#[tokio::test]
async fn signing_key_rotation_under_load_keeps_every_token_verifiable() {
    let client = common::client().await;
    let op = Operator::start_with(
        &client,
        Options {
            extra_env: vec![
                // Seconds instead of the hour a verifier needs: refused without this flag.
                ("M2M_UNSAFE_KEY_TIMINGS".into(), "true".into()),
                ("M2M_SIGNING_KEY_PUBLISH_AHEAD".into(), "2s".into()),
                ("M2M_SIGNING_KEY_RETENTION".into(), "1h".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    let ns = TestNamespace::new(&client, "m2m-keys").await;
    apply_app(&client, &ns.name, "agent", json!({"audiences": ["api"]})).await;
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let (id, secret) = credentials(&client, &ns.name, "agent").await;

    let first = http::token(&op.url(), &id, &secret, &[]).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_kid = http::kid(&first);
    http::verify(&op.url(), ISSUER, &first).await.unwrap();

    let keys: Api<Secret> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let annotate = json!({"metadata": {"annotations": {"m2m.dev/rotate": common::suffix()}}});
    keys.patch(
        "m2m-signing-keys",
        &PatchParams::default(),
        &Patch::Merge(&annotate),
    )
    .await
    .expect("annotate keys");

    let mut kids = vec![first_kid.clone()];
    let mut issued = vec![first.clone()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while tokio::time::Instant::now() < deadline {
        let (status, body) = http::token(&op.url(), &id, &secret, &[]).await;
        assert_eq!(status, 200, "{body}");
        let token = body["access_token"].as_str().unwrap().to_owned();
        http::verify(&op.url(), ISSUER, &token)
            .await
            .unwrap_or_else(|e| panic!("a token issued during rotation does not verify: {e}"));
        let kid = http::kid(&token);
        if !kids.contains(&kid) {
            kids.push(kid);
        }
        issued.push(token);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(kids.len() >= 2, "the new key never signed: {kids:?}");
    for token in &issued {
        http::verify(&op.url(), ISSUER, token)
            .await
            .unwrap_or_else(|e| panic!("an earlier token no longer verifies: {e}"));
    }
    let jwks = http::get_json(&format!("{}/.well-known/jwks.json", op.url())).await;
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(
        published.contains(&first_kid.as_str()),
        "the previous key stays published"
    );
    ns.delete().await;
}

#[tokio::test]
async fn discovery_and_jwks_are_served() {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let doc = http::get_json(&format!("{}/.well-known/openid-configuration", op.url())).await;
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(doc["token_endpoint"], format!("{ISSUER}/oauth2/token"));
    let jwks = http::get_json(&format!("{}/.well-known/jwks.json", op.url())).await;
    let first = &jwks["keys"][0];
    assert_eq!(
        (first["kty"].as_str(), first["alg"].as_str()),
        (Some("EC"), Some("ES256"))
    );
}
