//! Tenant mistakes and hostile environments must not take the operator down (issue 20): a Secret
//! the API server refuses, oversized objects, unreadable objects.

mod organizations;
mod relists;

use std::time::Duration;

use k8s_openapi::api::{
    admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding},
    core::v1::Secret,
};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    http,
    operator::Operator,
};

const HASHES: &str = "m2m_controller_argon2_duration_seconds_count{op=\"hash\"}";

/// A policy (as a tenant's platform might have) that refuses every Secret write in `ns`.
async fn freeze_secrets(client: &kube::Client, name: &str, ns: &str) {
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let policy = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["secrets"]}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            },
            "validations": [{"expression": "false", "message": "secrets are frozen in this namespace"}],
        }
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    let binding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }))
    .unwrap();
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
    // Policies take effect asynchronously: wait until a Secret create is refused.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    wait_for(
        "the policy to refuse Secrets",
        Duration::from_secs(30),
        || async {
            let probe: Secret =
                serde_json::from_value(json!({"metadata": {"name": "probe"}})).unwrap();
            match secrets
                .create(
                    &PostParams {
                        dry_run: true,
                        ..Default::default()
                    },
                    &probe,
                )
                .await
            {
                Err(kube::Error::Api(s)) if s.message.contains("frozen") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

const FREEZE_PREFIX: &str = "m2m-test-freeze-";

/// Removes the freeze policies whose name starts with `prefix` (all of them for
/// [`FREEZE_PREFIX`]: leftovers of an earlier run that failed before its cleanup would freeze
/// namespaces of this one).
async fn thaw(client: &kube::Client, prefix: &str, ns: Option<&str>) {
    let bindings = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone());
    let policies = Api::<ValidatingAdmissionPolicy>::all(client.clone());
    let lp = kube::api::ListParams::default();
    for b in bindings
        .list(&lp)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        if let Some(name) = b.metadata.name.filter(|n| n.starts_with(prefix)) {
            let _ = bindings.delete(&name, &DeleteParams::default()).await;
        }
    }
    for p in policies
        .list(&lp)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        if let Some(name) = p.metadata.name.filter(|n| n.starts_with(prefix)) {
            let _ = policies.delete(&name, &DeleteParams::default()).await;
        }
    }
    let Some(ns) = ns else {
        return;
    };
    // The deletion takes effect asynchronously too: wait until a Secret create is accepted.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    wait_for("the policy to be gone", Duration::from_secs(30), || async {
        let probe: Secret = serde_json::from_value(json!({"metadata": {"name": "probe"}})).unwrap();
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        match secrets.create(&dry_run, &probe).await {
            Ok(_) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// Lifts the freeze even when the test panics (with kubectl: a drop cannot await).
struct ThawOnDrop(String);

impl Drop for ThawOnDrop {
    fn drop(&mut self) {
        for kind in [
            "validatingadmissionpolicybinding",
            "validatingadmissionpolicy",
        ] {
            let _ = std::process::Command::new("kubectl")
                .args(["delete", kind, &self.0, "--ignore-not-found"])
                .output();
        }
    }
}

/// Several apps whose Secret the API server refuses (an admission policy, an immutable Secret
/// being rotated) cost one argon2id hash per backoff step, say why in their condition and once
/// in an Event, and do not slow the issue and rotation of other tenants' apps.
///
/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test]
async fn secrets_the_api_server_refuses_cost_one_hash_per_backoff_step_and_others_go_on() {
    let client = common::client().await;
    thaw(&client, FREEZE_PREFIX, None).await;
    let op = Operator::start(&client).await;
    let frozen = TestNamespace::new(&client, "m2m-frozen").await;
    let fine = TestNamespace::new(&client, "m2m-fine").await;
    let policy = format!("{FREEZE_PREFIX}{}", common::suffix());
    let _thaw = ThawOnDrop(policy.clone());
    freeze_secrets(&client, &policy, &frozen.name).await;
    let spec = json!({"audiences": ["api"]});
    let org = org_name("robust");
    apply_org(
        &client,
        &org,
        json!({"namespaces": [frozen.name, fine.name]}),
    )
    .await;
    let bound = |mut s: serde_json::Value| {
        s["organizationRef"] = json!({"name": org});
        s
    };
    const FROZEN_APPS: usize = 4;
    for i in 0..FROZEN_APPS {
        apply_app(
            &client,
            &frozen.name,
            &format!("stuck-{i}"),
            bound(spec.clone()),
        )
        .await;
    }
    for i in 0..FROZEN_APPS {
        let app = wait_app_reason(
            &client,
            &frozen.name,
            &format!("stuck-{i}"),
            "False",
            "SecretWriteFailed",
        )
        .await;
        let message = &app.status.unwrap().conditions[0].message;
        assert!(message.contains("secrets are frozen"), "{message}");
    }
    let hashes_before = op.metric(HASHES).await;
    let started = std::time::Instant::now();

    // Meanwhile other tenants' apps are issued and rotated at full speed.
    for i in 0..4 {
        apply_app(&client, &fine.name, &format!("ok-{i}"), bound(spec.clone())).await;
    }
    for i in 0..4 {
        wait_app_reason(
            &client,
            &fine.name,
            &format!("ok-{i}"),
            "True",
            "CredentialsIssued",
        )
        .await;
    }
    let (id, old) = credentials(&client, &fine.name, "ok-0").await;
    let apps: Api<m2m_operator::api::M2MApp> = Api::namespaced(client.clone(), &fine.name);
    apps.patch(
        "ok-0",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {"m2m.dev/rotate": "r1"}}})),
    )
    .await
    .unwrap();
    let new = wait_for(
        "the rotation of a healthy app",
        Duration::from_secs(10),
        || async {
            let (_, s) = credentials(&client, &fine.name, "ok-0").await;
            if s != old {
                Ok(s)
            } else {
                Err("not yet".into())
            }
        },
    )
    .await;
    assert_eq!(http::token(&op.url(), &id, &new, &[]).await.0, 200);

    // An immutable Secret being rotated is refused too; its current secret keeps working.
    let (frozen_id, frozen_secret) = credentials(&client, &fine.name, "ok-1").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &fine.name);
    secrets
        .patch(
            "ok-1-credentials",
            &PatchParams::default(),
            &Patch::Merge(&json!({"immutable": true})),
        )
        .await
        .unwrap();
    apps.patch(
        "ok-1",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {"m2m.dev/rotate": "r1"}}})),
    )
    .await
    .unwrap();
    let app = wait_app_reason(&client, &fine.name, "ok-1", "False", "SecretWriteFailed").await;
    let message = &app.status.unwrap().conditions[0].message;
    assert!(message.contains("immutable"), "{message}");
    assert_eq!(
        http::token(&op.url(), &frozen_id, &frozen_secret, &[])
            .await
            .0,
        200,
        "the current secret still works"
    );

    // Over ~20 s the refused apps cost at most one hash per backoff step each (5 s, 10 s, ...:
    // three steps fit), beside the four healthy apps' issue and one rotation, and the failed
    // rotation's steps. The loop this replaces hashed about four times a second per app.
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(started.elapsed())).await;
    let spent = op.metric(HASHES).await - hashes_before;
    let bound = (FROZEN_APPS + 1) * 3 + 4 + 1;
    assert!(
        spent <= bound as f64,
        "{spent} argon2id hashes in 20 s (at most {bound})"
    );
    for i in 0..FROZEN_APPS {
        let reasons = event_reasons(&client, &frozen.name, &format!("stuck-{i}")).await;
        assert_eq!(
            reasons.iter().filter(|r| *r == "SecretWriteFailed").count(),
            1,
            "one Event per app: {reasons:?}"
        );
    }

    // Lifting the policy: the stuck apps are issued at their next step (at most 5 min later;
    // a spec change retries at once).
    thaw(&client, &policy, Some(&frozen.name)).await;
    for i in 0..FROZEN_APPS {
        apps_touch(&client, &frozen.name, &format!("stuck-{i}")).await;
    }
    for i in 0..FROZEN_APPS {
        wait_app_reason(
            &client,
            &frozen.name,
            &format!("stuck-{i}"),
            "True",
            "CredentialsIssued",
        )
        .await;
    }
    delete_org(&client, &org).await;
    frozen.delete().await;
    fine.delete().await;
}

/// A spec change (a new generation): the operator retries a refused write at once.
async fn apps_touch(client: &kube::Client, ns: &str, name: &str) {
    let apps: Api<m2m_operator::api::M2MApp> = Api::namespaced(client.clone(), ns);
    apps.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"displayName": "retry"}})),
    )
    .await
    .unwrap();
}
