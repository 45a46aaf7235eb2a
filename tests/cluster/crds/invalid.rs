//! Every invalid object the schema and CEL rules refuse, and the field each refusal names.

use crate::common::{self, TestNamespace};
use kube::{Api, api::DeleteParams};
use m2m_operator::api::Organization;
use serde_json::{Value, json};

use super::*;

/// Each invalid object is refused by the API server with a message naming the field.
///
/// Long on purpose: one table of cases over one helper; the table is the test.
#[tokio::test]
async fn invalid_objects_are_rejected_naming_the_field() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::new(&client, "m2m-invalid").await;
    let n = &ns.name;
    let sfx = common::suffix();
    let valid_app = || json!({"scopes": ["read:users"], "audiences": ["https://api.example.com"]});
    let with = |patch: Value| {
        let mut spec = valid_app();
        for (k, v) in patch.as_object().expect("object") {
            spec[k] = v.clone();
        }
        spec
    };

    let create_cases: Vec<(&str, Value, &str)> = vec![
        (
            "bad code",
            org(&format!("bad-code-{sfx}"), json!({"code": "org 123!"})),
            "spec.code",
        ),
        (
            "code too long",
            org(&format!("long-code-{sfx}"), json!({"code": "a".repeat(65)})),
            "spec.code",
        ),
        (
            "bad scope token",
            app(n, "bad-scope", with(json!({"scopes": ["read users"]}))),
            "spec.scopes[0]",
        ),
        (
            "quote in scope",
            app(n, "quote-scope", with(json!({"scopes": ["read\"x"]}))),
            "spec.scopes[0]",
        ),
        (
            "empty audiences",
            app(n, "no-aud", with(json!({"audiences": []}))),
            "spec.audiences",
        ),
        (
            "missing audiences",
            app(n, "missing-aud", json!({"scopes": ["a"]})),
            "spec.audiences",
        ),
        (
            "tokenLifetime 30s",
            app(n, "short-life", with(json!({"tokenLifetime": "30s"}))),
            "spec.tokenLifetime",
        ),
        (
            "tokenLifetime 48h",
            app(n, "long-life", with(json!({"tokenLifetime": "48h"}))),
            "spec.tokenLifetime",
        ),
        (
            "tokenLifetime junk",
            app(n, "junk-life", with(json!({"tokenLifetime": "1 hour"}))),
            "spec.tokenLifetime",
        ),
        (
            "rotation.every unparsable",
            app(
                n,
                "bad-every",
                with(json!({"rotation": {"every": "monthly"}})),
            ),
            "spec.rotation.every",
        ),
        (
            "rotation.every too short",
            app(n, "fast-every", with(json!({"rotation": {"every": "10s"}}))),
            "spec.rotation.every",
        ),
        (
            "gracePeriod unparsable",
            app(
                n,
                "bad-grace",
                with(json!({"rotation": {"gracePeriod": "-1h"}})),
            ),
            "spec.rotation.gracePeriod",
        ),
        (
            "bad secretName",
            app(n, "bad-secret", with(json!({"secretName": "Not_A_Name"}))),
            "spec.secretName",
        ),
        (
            "unknown field",
            app(n, "unknown", with(json!({"colour": "blue"}))),
            "spec.colour",
        ),
        (
            "bad namespace name",
            org(
                &format!("bad-ns-{sfx}"),
                json!({"namespaces": ["Tenant A"]}),
            ),
            "spec.namespaces[0]",
        ),
    ];
    let mut failures = Vec::new();
    for (what, obj, field) in &create_cases {
        let status = rejection(apply(&client, obj, false).await, what);
        if !status.message.contains(field) {
            failures.push(format!(
                "{what}: message does not name {field}: {}",
                status.message
            ));
        }
    }

    // Transition rules: change after create.
    let org_a = format!("imm-a-{sfx}");
    let org_b = format!("imm-b-{sfx}");
    apply(&client, &org(&org_a, json!({"code": "imm_a"})), false)
        .await
        .expect("create org a");
    apply(&client, &org(&org_b, json!({})), false)
        .await
        .expect("create org b");
    let update_cases: Vec<(&str, Value, Value, &str)> = vec![
        (
            "changed code",
            org(&org_a, json!({"code": "imm_a"})),
            org(&org_a, json!({"code": "imm_other"})),
            "spec.code",
        ),
        (
            "removed code",
            org(&org_a, json!({"code": "imm_a"})),
            org(&org_a, json!({})),
            "spec.code",
        ),
        (
            "code set later to another value",
            org(&org_b, json!({})),
            org(&org_b, json!({"code": "other"})),
            "spec.code",
        ),
        (
            "changed organizationRef",
            app(
                n,
                "bound",
                with(json!({"organizationRef": {"name": org_a}})),
            ),
            app(
                n,
                "bound",
                with(json!({"organizationRef": {"name": org_b}})),
            ),
            "spec.organizationRef",
        ),
        (
            "removed organizationRef",
            app(
                n,
                "bound2",
                with(json!({"organizationRef": {"name": org_a}})),
            ),
            app(n, "bound2", valid_app()),
            "spec.organizationRef",
        ),
        (
            "added organizationRef",
            app(n, "global", valid_app()),
            app(
                n,
                "global",
                with(json!({"organizationRef": {"name": org_a}})),
            ),
            "spec.organizationRef",
        ),
    ];
    for (what, before, after, field) in &update_cases {
        apply(&client, before, false)
            .await
            .unwrap_or_else(|e| panic!("{what}: creating the object: {e}"));
        let status = rejection(apply(&client, after, false).await, what);
        if !status.message.contains(field) {
            failures.push(format!(
                "{what}: message does not name {field}: {}",
                status.message
            ));
        }
    }
    // An unchanged code (spelled out or defaulted to the name) is still accepted.
    apply(&client, &org(&org_b, json!({"code": org_b.clone()})), false)
        .await
        .expect("setting spec.code to the name it defaulted to is not a change");

    let orgs: Api<Organization> = Api::all(client.clone());
    for name in [&org_a, &org_b] {
        let _ = orgs.delete(name, &DeleteParams::default()).await;
    }
    ns.delete().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
