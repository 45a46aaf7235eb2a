//! The chart's ValidatingAdmissionPolicy: requests made as the operator's ServiceAccount
//! (impersonated, with exactly the chart's RBAC and policy, as every cluster test runs the
//! operator) that RBAC allows but that the operator never makes are refused by the API server.
//! Each refusal is its own test; the last two show that what the operator does write still goes
//! through.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use m2m_operator::api::M2MApp;
use m2m_operator_testkit::install;
use serde_json::{Value, json};

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    operator::{OPERATOR_NAMESPACE, OPERATOR_USER, Operator},
};

/// The policy's name in `deploy/m2m-operator.yaml`; the API server names it in each refusal.
const POLICY: &str = "m2m-operator-secret-writes";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// The admin client, with the operator's RBAC and policy installed and enforced.
async fn admin() -> Client {
    let client = common::client().await;
    common::install_crds(&client).await;
    crate::operator::ensure_operator_namespace(&client).await;
    common::install_operator_rbac(&client).await;
    client
}

async fn as_operator() -> Client {
    install::impersonating(
        OPERATOR_USER,
        install::service_account_groups(OPERATOR_NAMESPACE),
    )
    .await
}

fn secret(name: &str, type_: &str, labels: &[(&str, &str)], extra: Value) -> Secret {
    let labels: BTreeMap<_, _> = labels.iter().copied().collect();
    let mut value = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "labels": labels},
        "type": type_,
        "stringData": {"key": "value"},
    });
    if let (Some(obj), Value::Object(more)) = (value.as_object_mut(), extra) {
        for (k, v) in more {
            if k == "metadata" {
                let meta = obj["metadata"].as_object_mut().expect("metadata");
                meta.extend(v.as_object().cloned().unwrap_or_default());
            } else {
                obj.insert(k, v);
            }
        }
    }
    serde_json::from_value(value).expect("a Secret")
}

/// An M2MApp created by the admin (no operator runs): something a Secret can be owned by.
async fn app_owner(client: &Client, ns: &str) -> Value {
    let app: M2MApp = apply_app(
        client,
        ns,
        "owner",
        json!({"organizationRef": {"name": "none"}, "audiences": ["api"]}),
    )
    .await;
    json!([{"apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp", "name": "owner",
            "uid": app.uid().expect("uid"), "controller": true, "blockOwnerDeletion": true}])
}

/// Asserts that `result` is the API server refusing the request by the policy, with a message
/// that contains `why`.
fn assert_refused<T: std::fmt::Debug>(result: Result<T, kube::Error>, why: &str) {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(
                status.message.contains(POLICY) && status.message.contains(why),
                "refused by {POLICY} because {why:?}: {status:?}"
            );
        }
        other => panic!("must be refused by {POLICY} ({why}): {other:?}"),
    }
}

/// A Secret the admin creates (a stand-in for a TLS key, a webhook certificate, ...).
async fn foreign_secret(client: &Client, ns: &str, name: &str) -> Secret {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    api.create(
        &PostParams::default(),
        &secret(name, "Opaque", &[], json!({})),
    )
    .await
    .unwrap_or_else(|e| panic!("creating {ns}/{name}: {e}"))
}

fn key_value(secret: &Secret) -> Option<ByteString> {
    secret.data.as_ref()?.get("key").cloned()
}

#[tokio::test]
async fn a_service_account_token_secret_in_kube_system_is_refused() {
    let admin = admin().await;
    let name = format!("m2m-sa-token-{}", common::suffix());
    let token_secret = secret(
        &name,
        "kubernetes.io/service-account-token",
        &[],
        json!({"metadata": {"annotations": {"kubernetes.io/service-account.name": "default"}}}),
    );
    let api: Api<Secret> = Api::namespaced(as_operator().await, "kube-system");
    let result = api.create(&PostParams::default(), &token_secret).await;
    if result.is_ok() {
        let admin_api: Api<Secret> = Api::namespaced(admin, "kube-system");
        let _ = admin_api.delete(&name, &DeleteParams::default()).await;
    }
    assert_refused(result, "type Opaque");
}

#[tokio::test]
async fn a_service_account_token_secret_in_a_tenant_namespace_is_refused() {
    let admin = admin().await;
    let ns = TestNamespace::new(&admin, "m2m-adm-satoken").await;
    // Everything else about it is what the operator's own Secrets have: the label and a
    // controller M2MApp owner. Only the type is wrong.
    let owner = app_owner(&admin, &ns.name).await;
    let token_secret = secret(
        "stolen-token",
        "kubernetes.io/service-account-token",
        &[(MANAGED_BY, "m2m-operator")],
        json!({"metadata": {
            "annotations": {"kubernetes.io/service-account.name": "default"},
            "ownerReferences": owner,
        }}),
    );
    let api: Api<Secret> = Api::namespaced(as_operator().await, &ns.name);
    let result = api.create(&PostParams::default(), &token_secret).await;
    assert_refused(result, "type Opaque");
    ns.delete().await;
}

#[tokio::test]
async fn creating_an_unlabelled_secret_is_refused() {
    let admin = admin().await;
    // In its own namespace, where its Secrets need no owner: only the label is missing.
    let api: Api<Secret> = Api::namespaced(as_operator().await, OPERATOR_NAMESPACE);
    let name = format!("m2m-unlabelled-{}", common::suffix());
    let result = api
        .create(
            &PostParams::default(),
            &secret(&name, "Opaque", &[], json!({})),
        )
        .await;
    if result.is_ok() {
        let admin_api: Api<Secret> = Api::namespaced(admin, OPERATOR_NAMESPACE);
        let _ = admin_api.delete(&name, &DeleteParams::default()).await;
    }
    assert_refused(result, "must carry the label");
}

#[tokio::test]
async fn creating_an_unowned_secret_in_a_tenant_namespace_is_refused() {
    let admin = admin().await;
    let ns = TestNamespace::new(&admin, "m2m-adm-unowned").await;
    // Labelled and Opaque, but controlled by no M2MApp: not a credential Secret.
    let api: Api<Secret> = Api::namespaced(as_operator().await, &ns.name);
    let result = api
        .create(
            &PostParams::default(),
            &secret(
                "planted",
                "Opaque",
                &[(MANAGED_BY, "m2m-operator")],
                json!({}),
            ),
        )
        .await;
    assert_refused(result, "controlled by an M2MApp");
    ns.delete().await;
}

#[tokio::test]
async fn patching_a_secret_it_does_not_manage_is_refused() {
    let admin = admin().await;
    let ns = TestNamespace::new(&admin, "m2m-adm-patch").await;
    let before = foreign_secret(&admin, &ns.name, "webhook-tls").await;
    let api: Api<Secret> = Api::namespaced(as_operator().await, &ns.name);
    let edit = json!({"stringData": {"key": "chosen-by-the-attacker"}});
    let result = api
        .patch("webhook-tls", &PatchParams::default(), &Patch::Merge(&edit))
        .await;
    assert_refused(result, "only change Secrets it manages");
    let after = get_secret(&admin, &ns.name, "webhook-tls")
        .await
        .expect("Secret");
    assert_eq!(key_value(&after), key_value(&before), "unchanged");
    ns.delete().await;
}

#[tokio::test]
async fn labelling_a_secret_it_does_not_manage_to_adopt_it_is_refused() {
    let admin = admin().await;
    let ns = TestNamespace::new(&admin, "m2m-adm-adopt").await;
    let owner = app_owner(&admin, &ns.name).await;
    foreign_secret(&admin, &ns.name, "webhook-tls").await;
    // The label and an M2MApp owner in the same write: the Secret was not the operator's before.
    let api: Api<Secret> = Api::namespaced(as_operator().await, &ns.name);
    let edit = json!({"metadata": {"labels": {MANAGED_BY: "m2m-operator"}, "ownerReferences": owner},
                      "stringData": {"key": "chosen-by-the-attacker"}});
    let result = api
        .patch("webhook-tls", &PatchParams::default(), &Patch::Merge(&edit))
        .await;
    assert_refused(result, "only change Secrets it manages");
    ns.delete().await;
}

#[tokio::test]
async fn updating_a_secret_it_does_not_manage_is_refused() {
    let admin = admin().await;
    // Its own namespace, where the Role allows update: e.g. the token listener's TLS Secret.
    let name = format!("m2m-token-tls-{}", common::suffix());
    let mut replacement = foreign_secret(&admin, OPERATOR_NAMESPACE, &name).await;
    replacement.data = Some([("key".to_owned(), ByteString(b"replaced".to_vec()))].into());
    replacement.metadata.managed_fields = None;
    let api: Api<Secret> = Api::namespaced(as_operator().await, OPERATOR_NAMESPACE);
    let result = api
        .replace(&name, &PostParams::default(), &replacement)
        .await;
    let admin_api: Api<Secret> = Api::namespaced(admin, OPERATOR_NAMESPACE);
    let _ = admin_api.delete(&name, &DeleteParams::default()).await;
    assert_refused(result, "only change Secrets it manages");
}

#[tokio::test]
async fn removing_the_label_from_a_secret_it_manages_is_refused() {
    let admin = admin().await;
    let name = format!("m2m-client-labelled-{}", common::suffix());
    let api: Api<Secret> = Api::namespaced(as_operator().await, OPERATOR_NAMESPACE);
    api.create(
        &PostParams::default(),
        &secret(&name, "Opaque", &[(MANAGED_BY, "m2m-operator")], json!({})),
    )
    .await
    .expect("the operator creates a labelled Secret in its namespace");
    let edit = json!({"metadata": {"labels": {MANAGED_BY: null}}});
    let result = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&edit))
        .await;
    let admin_api: Api<Secret> = Api::namespaced(admin, OPERATOR_NAMESPACE);
    let _ = admin_api.delete(&name, &DeleteParams::default()).await;
    assert_refused(result, "must carry the label");
}

#[tokio::test]
async fn deleting_a_secret_it_does_not_manage_is_refused() {
    let admin = admin().await;
    // Its own namespace, where the Role allows delete (for its client records).
    let name = format!("m2m-other-{}", common::suffix());
    foreign_secret(&admin, OPERATOR_NAMESPACE, &name).await;
    let api: Api<Secret> = Api::namespaced(as_operator().await, OPERATOR_NAMESPACE);
    let result = api.delete(&name, &DeleteParams::default()).await;
    let admin_api: Api<Secret> = Api::namespaced(admin, OPERATOR_NAMESPACE);
    let _ = admin_api.delete(&name, &DeleteParams::default()).await;
    assert_refused(result, "only delete Secrets it manages");
}

#[tokio::test]
async fn the_operator_identity_may_still_write_the_secrets_it_manages() {
    let admin = admin().await;
    let ns = TestNamespace::new(&admin, "m2m-adm-allowed").await;
    let owner = app_owner(&admin, &ns.name).await;
    let operator = as_operator().await;
    let labels = [(MANAGED_BY, "m2m-operator")];

    // A credential Secret: created, then changed by server-side apply.
    let tenant: Api<Secret> = Api::namespaced(operator.clone(), &ns.name);
    let credential = secret(
        "owner-credentials",
        "Opaque",
        &labels,
        json!({"metadata": {"ownerReferences": owner}}),
    );
    tenant
        .create(&PostParams::default(), &credential)
        .await
        .expect("create a credential Secret");
    let apply = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "owner-credentials", "labels": {MANAGED_BY: "m2m-operator"},
                     "ownerReferences": owner},
        "stringData": {"key": "rotated"}});
    tenant
        .patch(
            "owner-credentials",
            &PatchParams::apply("m2m-operator").force(),
            &Patch::Apply(&apply),
        )
        .await
        .expect("apply a credential Secret");

    // A record-like Secret in its namespace: created, replaced, deleted.
    let own: Api<Secret> = Api::namespaced(operator, OPERATOR_NAMESPACE);
    let name = format!("m2m-client-allowed-{}", common::suffix());
    let mut created = own
        .create(
            &PostParams::default(),
            &secret(&name, "Opaque", &labels, json!({})),
        )
        .await
        .expect("create a record");
    created.metadata.managed_fields = None;
    created.data = Some([("key".to_owned(), ByteString(b"next".to_vec()))].into());
    own.replace(&name, &PostParams::default(), &created)
        .await
        .expect("replace a record");
    own.delete(&name, &DeleteParams::default())
        .await
        .expect("delete a record");
    ns.delete().await;
}

#[tokio::test]
async fn a_credential_secret_whose_label_was_removed_is_repaired() {
    let admin = admin().await;
    let _op = Operator::start(&admin).await;
    let ns = TestNamespace::new(&admin, "m2m-adm-relabel").await;
    let org = org_name("adm-relabel");
    apply_org(
        &admin,
        &org,
        json!({"code": format!("org_{}", common::suffix()), "namespaces": [ns.name]}),
    )
    .await;
    apply_app(
        &admin,
        &ns.name,
        "agent",
        json!({"organizationRef": {"name": org}, "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(&admin, &ns.name, "agent", "True", "CredentialsIssued").await;
    let (_, issued) = credentials(&admin, &ns.name, "agent").await;

    // A person strips the operator's label; the operator may still put it back (the Secret is
    // controlled by the app), keeping the secret.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns.name);
    let edit = json!({"metadata": {"labels": {MANAGED_BY: null}}});
    secrets
        .patch(
            "agent-credentials",
            &PatchParams::default(),
            &Patch::Merge(&edit),
        )
        .await
        .expect("remove the label");
    wait_for("label put back", Duration::from_secs(30), || async {
        let s = get_secret(&admin, &ns.name, "agent-credentials")
            .await
            .ok_or("no Secret")?;
        match s.labels().get(MANAGED_BY).map(String::as_str) {
            Some("m2m-operator") => Ok(()),
            other => Err(format!("{MANAGED_BY}={other:?}")),
        }
    })
    .await;
    let (_, now) = credentials(&admin, &ns.name, "agent").await;
    assert_eq!(now, issued, "the secret is kept");
    delete_org(&admin, &org).await;
    ns.delete().await;
}
