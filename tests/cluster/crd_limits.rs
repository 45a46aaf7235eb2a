//! The CRDs' size limits and the `secretTemplate` key and value rules on the real API server
//! (whose CEL cost estimation accepted the CRDs when the suite installed them): each value over
//! a limit is refused naming the field, a maximal object is accepted, and a Secret carrying a
//! maximal template's labels and annotations is accepted too (what the M2MApp accepts, the
//! Secret create does not refuse).

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use m2m_operator::api::Organization;
use serde_json::{Map, Value, json};

use crate::{
    common::{self, TestNamespace},
    crds::{app, apply, org, rejection},
};

/// A DNS subdomain of exactly 253 characters.
fn longest_prefix() -> String {
    format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    )
}

/// `n` distinct qualified names of the greatest length (253 + `/` + 63).
fn longest_keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{}/k{i:02}{}", longest_prefix(), "x".repeat(60)))
        .collect()
}

fn map(entries: impl IntoIterator<Item = (String, String)>) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect::<Map<_, _>>(),
    )
}

/// The largest `secretTemplate` the schema allows: 32 labels and 32 annotations with keys of
/// 317 characters, label values of 63, annotations filling 16384 bytes exactly.
fn maximal_template() -> Value {
    let labels = map(longest_keys(32).into_iter().map(|k| (k, "v".repeat(63))));
    let keys = longest_keys(32);
    let key_bytes: usize = keys.iter().map(String::len).sum();
    let per_value = (16384 - key_bytes) / 32;
    let mut annotations: Vec<(String, String)> = keys
        .into_iter()
        .map(|k| (k, "a".repeat(per_value)))
        .collect();
    let used = key_bytes + per_value * 32;
    annotations[0].1.push_str(&"a".repeat(16384 - used));
    json!({"labels": labels, "annotations": map(annotations)})
}

/// Long on purpose: one table of cases over one helper; the table is the test.
#[tokio::test]
async fn values_over_the_limits_are_rejected_naming_the_field() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::new(&client, "m2m-limits").await;
    let n = &ns.name;
    let sfx = common::suffix();
    let base = || json!({"audiences": ["api"]});
    let with = |field: &str, value: Value| {
        let mut spec = base();
        spec[field] = value;
        spec
    };
    let labels = |entries: Value| with("secretTemplate", json!({"labels": entries}));
    let annotations = |entries: Value| with("secretTemplate", json!({"annotations": entries}));
    let many = |n: usize| map((0..n).map(|i| (format!("k{i}"), "v".to_owned())));
    let a4000 = "a".repeat(4000);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "label key with a space",
            app(n, "l1", labels(json!({"bad key": "x"}))),
            "spec.secretTemplate.labels",
        ),
        (
            "label name of 64",
            app(n, "l2", labels(json!({"a".repeat(64): "x"}))),
            "spec.secretTemplate.labels",
        ),
        (
            "label prefix of 254",
            app(
                n,
                "l3",
                labels(json!({format!("a{}/x", longest_prefix()): "x"})),
            ),
            "spec.secretTemplate.labels",
        ),
        (
            "label prefix in capitals",
            app(n, "l4", labels(json!({"Example.com/x": "x"}))),
            "spec.secretTemplate.labels",
        ),
        (
            "label key with two slashes",
            app(n, "l5", labels(json!({"a/b/c": "x"}))),
            "spec.secretTemplate.labels",
        ),
        (
            "label key ending in a dash",
            app(n, "l6", labels(json!({"team-": "x"}))),
            "spec.secretTemplate.labels",
        ),
        (
            "label value with a space",
            app(n, "l7", labels(json!({"team": "a b"}))),
            "spec.secretTemplate.labels",
        ),
        (
            "label value of 64",
            app(n, "l8", labels(json!({"team": "v".repeat(64)}))),
            "spec.secretTemplate.labels",
        ),
        (
            "33 labels",
            app(n, "l9", labels(many(33))),
            "spec.secretTemplate.labels",
        ),
        (
            "annotation key with a space",
            app(n, "a1", annotations(json!({"bad key": "x"}))),
            "spec.secretTemplate.annotations",
        ),
        (
            "annotation key with two slashes",
            app(n, "a2", annotations(json!({"a/b/c": "x"}))),
            "spec.secretTemplate.annotations",
        ),
        (
            "annotation value of 4097",
            app(n, "a3", annotations(json!({"k": "a".repeat(4097)}))),
            "spec.secretTemplate.annotations",
        ),
        (
            "annotations over 16384 bytes",
            app(
                n,
                "a4",
                annotations(json!({"a": a4000, "b": a4000, "c": a4000, "d": a4000, "e": a4000})),
            ),
            "spec.secretTemplate.annotations",
        ),
        (
            "annotations over 16384 bytes in UTF-8",
            app(
                n,
                "a5",
                annotations(
                    json!({"a": "é".repeat(4000), "b": "é".repeat(4000), "c": "é".repeat(4000)}),
                ),
            ),
            "spec.secretTemplate.annotations",
        ),
        (
            "33 annotations",
            app(n, "a6", annotations(many(33))),
            "spec.secretTemplate.annotations",
        ),
        (
            "65 scopes",
            app(
                n,
                "s1",
                with(
                    "scopes",
                    json!((0..65).map(|i| format!("s{i}")).collect::<Vec<_>>()),
                ),
            ),
            "spec.scopes",
        ),
        (
            "17 audiences",
            app(
                n,
                "s2",
                with(
                    "audiences",
                    json!((0..17).map(|i| format!("a{i}")).collect::<Vec<_>>()),
                ),
            ),
            "spec.audiences",
        ),
        (
            "displayName of 257",
            app(n, "s3", with("displayName", json!("d".repeat(257)))),
            "spec.displayName",
        ),
        (
            "257 namespaces",
            org(
                &format!("o1-{sfx}"),
                json!({"namespaces": (0..257).map(|i| format!("n{i}")).collect::<Vec<_>>()}),
            ),
            "spec.namespaces",
        ),
        (
            "33 matchLabels",
            org(
                &format!("o2-{sfx}"),
                json!({"namespaceSelector": {"matchLabels": many(33)}}),
            ),
            "spec.namespaceSelector.matchLabels",
        ),
        (
            "matchLabels key with a space",
            org(
                &format!("o3-{sfx}"),
                json!({"namespaceSelector": {"matchLabels": {"bad key": "x"}}}),
            ),
            "spec.namespaceSelector.matchLabels",
        ),
        (
            "17 matchExpressions",
            org(
                &format!("o4-{sfx}"),
                json!({"namespaceSelector": {"matchExpressions": (0..17).map(|i| json!({"key": format!("k{i}"), "operator": "Exists"})).collect::<Vec<_>>()}}),
            ),
            "spec.namespaceSelector.matchExpressions",
        ),
        (
            "65 values",
            org(
                &format!("o5-{sfx}"),
                json!({"namespaceSelector": {"matchExpressions": [{"key": "k", "operator": "In", "values": (0..65).map(|i| format!("v{i}")).collect::<Vec<_>>()}]}}),
            ),
            "spec.namespaceSelector.matchExpressions[0].values",
        ),
    ];
    let mut failures = Vec::new();
    for (what, obj, field) in &cases {
        let status = rejection(apply(&client, obj, true).await, what);
        if !status.message.contains(field) {
            failures.push(format!(
                "{what}: message does not name {field}: {}",
                status.message
            ));
        }
    }
    ns.delete().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn maximal_objects_are_accepted_and_their_template_fits_a_secret() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::new(&client, "m2m-maximal").await;
    let org_name = format!("{}-{}", "o".repeat(240), common::suffix());
    let template = maximal_template();
    let spec = json!({
        "organizationRef": {"name": org_name},
        "displayName": "d".repeat(256),
        "scopes": (0..64).map(|i| format!("{i:02}{}", "s".repeat(126))).collect::<Vec<_>>(),
        "audiences": (0..16).map(|i| format!("{i:02}{}", "a".repeat(254))).collect::<Vec<_>>(),
        "tokenLifetime": "24h",
        "secretName": longest_prefix(),
        "secretTemplate": template,
        "rotation": {"every": "720h", "gracePeriod": "720h"},
    });
    let created = apply(&client, &app(&ns.name, "maximal", spec), false).await;
    let created = created.unwrap_or_else(|e| panic!("a maximal M2MApp is refused: {e}"));
    let size = serde_json::to_vec(&created)
        .map(|v| v.len())
        .unwrap_or_default();
    println!("a maximal M2MApp as the API server returns it: {size} bytes");

    let org_spec = json!({
        "code": "c".repeat(64),
        "displayName": "d".repeat(256),
        "namespaces": (0..256).map(|i| format!("{i:03}{}", "n".repeat(60))).collect::<Vec<_>>(),
        "namespaceSelector": {
            "matchLabels": map(longest_keys(32).into_iter().map(|k| (k, "v".repeat(63)))),
            "matchExpressions": (0..16).map(|i| json!({
                "key": format!("{}/e{i:02}{}", longest_prefix(), "x".repeat(60)),
                "operator": "NotIn",
                "values": (0..64).map(|j| format!("{j:02}{}", "v".repeat(61))).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        },
        "allowedScopes": (0..64).map(|i| format!("{i:02}{}", "s".repeat(126))).collect::<Vec<_>>(),
    });
    apply(&client, &org(&org_name, org_spec), false)
        .await
        .unwrap_or_else(|e| panic!("a maximal Organization is refused: {e}"));

    // The operator's own labels and annotation beside the template's, as the Secret gets them.
    let mut labels = template["labels"].clone();
    labels["app.kubernetes.io/managed-by"] = json!("m2m-operator");
    labels["m2m.dev/app"] = json!("maximal");
    let mut annotations = template["annotations"].clone();
    annotations["m2m.dev/revision"] = json!("1");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": longest_prefix(), "labels": labels, "annotations": annotations},
        "type": "Opaque",
        "stringData": {"client_id": "x"},
    }))
    .expect("a Secret");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    secrets
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &secret,
        )
        .await
        .unwrap_or_else(|e| panic!("a Secret with a maximal template's metadata is refused: {e}"));

    let orgs: Api<Organization> = Api::all(client.clone());
    let _ = orgs.delete(&org_name, &DeleteParams::default()).await;
    ns.delete().await;
}

/// `status.rotation.lastHandledRotateRequest` is bounded (128 characters) while the annotation
/// it records is not: a longer value rotates once, is recorded as its digest, and does not
/// rotate again.
#[tokio::test]
async fn a_rotate_value_longer_than_status_allows_rotates_once() {
    use std::time::Duration;

    use kube::api::{Patch, PatchParams};
    use m2m_operator::api::M2MApp;

    use crate::{common::wait_for, fixtures::*, http, operator::Operator};

    let client = common::client().await;
    let op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-long-rotate").await;
    let org = org_name("long-rotate");
    apply_org(&client, &org, json!({"namespaces": [ns.name]})).await;
    let spec = json!({"organizationRef": {"name": org}, "audiences": ["api"],
                      "rotation": {"gracePeriod": "0s"}});
    apply_app(&client, &ns.name, "long", spec).await;
    wait_app_reason(&client, &ns.name, "long", "True", "CredentialsIssued").await;
    let (id, old) = credentials(&client, &ns.name, "long").await;

    let apps: Api<M2MApp> = Api::namespaced(client.clone(), &ns.name);
    let value = format!("leak-{}", "x".repeat(300));
    apps.patch(
        "long",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {"m2m.dev/rotate": value}}})),
    )
    .await
    .expect("annotate");
    let handled = wait_for(
        "the rotation recorded in status",
        Duration::from_secs(20),
        || async {
            let app = get_app(&client, &ns.name, "long").await;
            let rotation = app.status.and_then(|s| s.rotation).unwrap_or_default();
            match rotation.last_handled_rotate_request {
                Some(h) if rotation.revision == 2 => Ok(h),
                other => Err(format!("revision {} handled {other:?}", rotation.revision)),
            }
        },
    )
    .await;
    assert!(
        handled.starts_with("sha256:") && handled.len() == 71,
        "{handled}"
    );
    let (_, new) = credentials(&client, &ns.name, "long").await;
    assert_ne!(new, old);
    assert_eq!(http::token(&op.url(), &id, &new, &[]).await.0, 200);
    // Nothing rotates again for the same value.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let app = get_app(&client, &ns.name, "long").await;
    let revision = app.status.and_then(|s| s.rotation).map(|r| r.revision);
    assert_eq!(revision, Some(2));
    assert_eq!(credentials(&client, &ns.name, "long").await.1, new);

    delete_org(&client, &org).await;
    ns.delete().await;
}
