//! The controller against the real API server, with the real operator binary running: issuing
//! and tenancy here; repairs and restarts in `repair.rs`; deletions, duplicates, suspension and
//! disabling in `lifecycle.rs`.

mod lifecycle;
mod repair;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use m2m_operator::credentials::hash::verify;
use serde_json::json;

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    operator::Operator,
};

const CONTRACT_KEYS: [&str; 7] = [
    "audience",
    "client_id",
    "client_secret",
    "issuer",
    "org_code",
    "scope",
    "token_url",
];

/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test]
async fn an_org_app_gets_working_credentials_and_status() {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-issue").await;
    let org = org_name("acme");
    let code = format!("org_{}", common::suffix());
    apply_org(&client, &org, json!({"code": code, "namespaces": [ns.name], "allowedScopes": ["read:users", "write:flags"]})).await;
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({
            "organizationRef": {"name": org}, "scopes": ["write:flags", "read:users"],
            "audiences": ["https://api.example.com", "billing"],
        }),
    )
    .await;
    let app = wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let status = app.status.clone().unwrap();

    let secret = get_secret(&client, &ns.name, "agent-credentials")
        .await
        .expect("Secret created");
    let d = data(&secret);
    assert_eq!(
        d.keys().map(String::as_str).collect::<Vec<_>>(),
        CONTRACT_KEYS
    );
    assert_eq!(d["client_id"], status.client_id.clone().unwrap());
    assert!(d["client_secret"].starts_with("m2msec_") && d["client_secret"].len() >= 7 + 43);
    assert_eq!(d["org_code"], code);
    assert_eq!(d["scope"], "read:users write:flags");
    assert_eq!(d["audience"], "https://api.example.com billing");
    assert_eq!(d["issuer"], crate::operator::ISSUER);
    assert_eq!(
        d["token_url"],
        format!("{}/oauth2/token", crate::operator::ISSUER)
    );
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        secret.labels()["app.kubernetes.io/managed-by"],
        "m2m-operator"
    );
    assert_eq!(secret.labels()["m2m.dev/app"], "agent");
    assert_eq!(secret.annotations()["m2m.dev/revision"], "1");
    let owner = &secret.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("M2MApp", uid(&app).as_str(), Some(true))
    );

    assert_eq!(status.secret_name.as_deref(), Some("agent-credentials"));
    assert_eq!(status.organization_code.as_deref(), Some(code.as_str()));
    assert_eq!(status.scopes, ["read:users", "write:flags"]);
    assert_eq!(status.rotation.as_ref().map(|r| r.revision), Some(1));
    assert_eq!(status.observed_generation, app.metadata.generation);

    let rec = record(&client, &uid(&app)).await.expect("client record");
    assert!(
        verify(&d["client_secret"], rec.current.as_ref().unwrap()),
        "the stored hash verifies the Secret's secret"
    );
    assert!(
        rec.current
            .as_ref()
            .unwrap()
            .as_str()
            .starts_with("$argon2id$")
    );
    let record_text = serde_json::to_string(&record_secret(&client, &uid(&app)).await).unwrap();
    assert!(
        !record_text.contains(&d["client_secret"]),
        "the record holds no plaintext"
    );
    wait_event(&client, &ns.name, "agent", "CredentialsIssued").await;
    let org_obj = wait_org_reason(&client, &org, "True", "Active").await;
    assert_eq!(org_obj.status.as_ref().map(|s| s.apps), Some(1));
    assert_eq!(
        org_obj.status.as_ref().and_then(|s| s.code.clone()),
        Some(code.clone())
    );

    let metrics = op.metrics().await;
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{metrics}"))
    };
    assert!(value("m2m_apps{reason=\"CredentialsIssued\"}") >= 1.0);
    assert!(value("m2m_reconciles_total{kind=\"M2MApp\",result=\"success\"}") >= 1.0);
    assert!(value("m2m_credentials_total{action=\"issued\"}") >= 1.0);
    assert!(metrics.contains("m2m_reconcile_duration_seconds_bucket"));

    delete_org(&client, &org).await;
    ns.delete().await;
}

#[tokio::test]
async fn a_namespace_not_allowed_gets_no_secret_until_the_org_allows_it() {
    let client = common::client().await;
    let _op = Operator::start(&client).await;
    let allowed = TestNamespace::new(&client, "m2m-ns-a").await;
    let other = TestNamespace::new(&client, "m2m-ns-b").await;
    let org = org_name("nsorg");
    apply_org(&client, &org, json!({"namespaces": [allowed.name]})).await;
    apply_app(
        &client,
        &other.name,
        "agent",
        json!({"organizationRef": {"name": org}, "audiences": ["api"]}),
    )
    .await;
    let app = wait_app_reason(
        &client,
        &other.name,
        "agent",
        "False",
        "NamespaceNotAllowed",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        get_secret(&client, &other.name, "agent-credentials")
            .await
            .is_none(),
        "no Secret for a refused app"
    );
    assert!(
        record(&client, &uid(&app)).await.is_none(),
        "no hashes for a refused app"
    );
    wait_event(&client, &other.name, "agent", "NamespaceNotAllowed").await;

    apply_org(
        &client,
        &org,
        json!({"namespaces": [allowed.name, other.name]}),
    )
    .await;
    wait_app_reason(&client, &other.name, "agent", "True", "CredentialsIssued").await;
    assert!(
        get_secret(&client, &other.name, "agent-credentials")
            .await
            .is_some()
    );

    delete_org(&client, &org).await;
    allowed.delete().await;
    other.delete().await;
}

#[tokio::test]
async fn namespace_selectors_bind_by_label() {
    let client = common::client().await;
    let _op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-sel").await;
    let org = org_name("selorg");
    let tenant = common::suffix();
    apply_org(
        &client,
        &org,
        json!({"namespaceSelector": {"matchLabels": {"m2m.dev/tenant": tenant}}}),
    )
    .await;
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({"organizationRef": {"name": org}, "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "agent", "False", "NamespaceNotAllowed").await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let label = json!({"metadata": {"labels": {"m2m.dev/tenant": tenant}}});
    namespaces
        .patch(&ns.name, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label namespace");
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    delete_org(&client, &org).await;
    ns.delete().await;
}

#[tokio::test]
async fn refusals_scopes_missing_org_and_foreign_secret() {
    let client = common::client().await;
    let _op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-refuse").await;
    let org = org_name("capped");
    apply_org(
        &client,
        &org,
        json!({"namespaces": [ns.name], "allowedScopes": ["read"]}),
    )
    .await;

    apply_app(&client, &ns.name, "greedy", json!({"organizationRef": {"name": org}, "scopes": ["read", "admin"], "audiences": ["api"]})).await;
    let greedy = wait_app_reason(&client, &ns.name, "greedy", "False", "ScopesNotAllowed").await;
    let message = &greedy.status.as_ref().unwrap().conditions[0].message;
    assert!(
        message.contains("admin") && !message.contains("read,"),
        "{message}"
    );

    apply_app(
        &client,
        &ns.name,
        "orphan",
        json!({"organizationRef": {"name": "no-such-org"}, "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "orphan", "False", "OrganizationNotFound").await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let foreign: Secret = serde_json::from_value(json!({
        "metadata": {"name": "taken-credentials", "labels": {"app.kubernetes.io/managed-by": "m2m-operator"}},
        "stringData": {"client_secret": "someone-elses"},
    })).unwrap();
    let foreign = secrets
        .create(&PostParams::default(), &foreign)
        .await
        .expect("create foreign Secret");
    apply_app(
        &client,
        &ns.name,
        "taken",
        json!({"organizationRef": {"name": org}, "scopes": ["read"], "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "taken", "False", "SecretConflict").await;
    wait_event(&client, &ns.name, "taken", "SecretConflict").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = secrets
        .get("taken-credentials")
        .await
        .expect("foreign Secret still there");
    assert_eq!(
        after.metadata.resource_version, foreign.metadata.resource_version,
        "foreign Secret untouched"
    );
    assert_eq!(after.data, foreign.data);

    delete_org(&client, &org).await;
    ns.delete().await;
}

#[tokio::test]
async fn a_global_app_works_in_any_namespace_without_org_code() {
    let client = common::client().await;
    let _op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-global").await;
    apply_app(&client, &ns.name, "global", json!({"scopes": ["admin"], "audiences": ["api"], "secretName": "global-creds",
        "secretTemplate": {"labels": {"team": "platform"}, "annotations": {"reloader.stakater.com/match": "true"}}})).await;
    let app = wait_app_reason(&client, &ns.name, "global", "True", "CredentialsIssued").await;
    let secret = get_secret(&client, &ns.name, "global-creds")
        .await
        .expect("Secret at spec.secretName");
    assert!(!data(&secret).contains_key("org_code"));
    assert_eq!(data(&secret)["scope"], "admin");
    assert_eq!(secret.labels()["team"], "platform");
    assert_eq!(secret.annotations()["reloader.stakater.com/match"], "true");
    assert_eq!(app.status.unwrap().organization_code, None);

    // Spec changes flow into the Secret without changing the secret.
    let before = data(&secret)["client_secret"].clone();
    apply_app(&client, &ns.name, "global", json!({"scopes": ["admin", "read"], "audiences": ["api", "other"], "secretName": "global-creds"})).await;
    let updated = wait_for(
        "scope and audience updated in the Secret",
        Duration::from_secs(20),
        || async {
            let s = get_secret(&client, &ns.name, "global-creds")
                .await
                .ok_or("missing")?;
            let d = data(&s);
            if d["scope"] == "admin read" && d["audience"] == "api other" {
                Ok(s)
            } else {
                Err(format!("{d:?}"))
            }
        },
    )
    .await;
    assert_eq!(data(&updated)["client_secret"], before);
    ns.delete().await;
}
