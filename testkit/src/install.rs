//! What the operator needs in a cluster, from the repository's own files: the CRDs of
//! `crds/`, its namespace, and the ServiceAccount, RBAC and admission policy
//! that `deploy/m2m-operator.yaml` (rendered from the chart) declares. For the cluster tests and
//! the scale benchmarks; every function panics with what failed.

#![allow(clippy::expect_used)] // test and benchmark setup: a failure ends the run, loudly

use std::{path::PathBuf, time::Duration};

use k8s_openapi::{
    api::core::v1::{Namespace, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams},
    discovery::Scope,
    runtime::wait::{await_condition, conditions},
};
use serde::Deserialize;

/// The kinds taken from `deploy/m2m-operator.yaml`: the operator's identity, what RBAC grants
/// it, and the admission policy that narrows its Secret writes.
const OPERATOR_KINDS: [&str; 7] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    POLICY_KIND,
    "ValidatingAdmissionPolicyBinding",
];
const POLICY_KIND: &str = "ValidatingAdmissionPolicy";
/// The groups the API server gives every ServiceAccount token of `namespace`.
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        "system:serviceaccounts".to_owned(),
        format!("system:serviceaccounts:{namespace}"),
        "system:authenticated".to_owned(),
    ]
}

/// The repository (the operator crate's root, one level above this test kit), found at run
/// time: cargo sets `CARGO_MANIFEST_DIR` for the tests it runs, and the checkout is the first
/// directory upwards that holds `testkit/Cargo.toml`. The path compiled in is only the last
/// resort: a build cache shared by two checkouts reuses artifacts across them, so a compiled-in
/// path can name the other checkout (or one since deleted).
pub fn repo_root() -> PathBuf {
    let compiled = || PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(compiled);
    start
        .ancestors()
        .find(|dir| dir.join("testkit/Cargo.toml").is_file())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let kit = compiled();
            kit.parent().map(PathBuf::from).unwrap_or(kit)
        })
}

/// The CRDs as checked in under `crds/`, by file name.
pub fn checked_in_crds() -> Vec<CustomResourceDefinition> {
    let dir = repo_root().join("crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

/// Applies the checked-in CRDs (server-side, as `manager`) and waits until each is Established.
pub async fn crds(client: &Client, manager: &str) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in checked_in_crds() {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established within 30s"))
        .unwrap_or_else(|e| panic!("watching CRD {name}: {e}"));
    }
}

/// Creates the namespace `name` unless it exists.
pub async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("namespace");
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

/// Applies (server-side, as `manager`) the ServiceAccount, RBAC and admission policy objects of
/// `deploy/m2m-operator.yaml`; panics unless it has one of each kind. Returns once the API
/// server enforces the policy (it loads policies asynchronously), so whatever runs as the
/// operator afterwards runs under it.
pub async fn operator_rbac(client: &Client, manager: &str) {
    let path = repo_root().join("deploy/m2m-operator.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut applied = Vec::new();
    let mut service_account = None;
    let mut policy = None;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc).expect("a YAML document");
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_yaml::from_value(value).expect("a Kubernetes object");
        let Some(types) = obj.types.clone() else {
            continue;
        };
        if !OPERATOR_KINDS.contains(&types.kind.as_str()) {
            continue;
        }
        match types.kind.as_str() {
            "ServiceAccount" => {
                service_account = Some((obj.namespace().unwrap_or_default(), obj.name_any()));
            }
            POLICY_KIND => policy = Some(obj.name_any()),
            _ => {}
        }
        let gvk = GroupVersionKind::try_from(&types).expect("apiVersion and kind");
        let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .unwrap_or_else(|e| panic!("discovering {gvk:?}: {e}"));
        let api: Api<DynamicObject> = match (caps.scope, obj.namespace()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), &ns, &resource),
            (Scope::Namespaced, None) => {
                panic!("{} {} has no namespace", types.kind, obj.name_any())
            }
            (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            &obj.name_any(),
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {} {}: {e}", types.kind, obj.name_any()));
        applied.push(types.kind);
    }
    for kind in OPERATOR_KINDS {
        assert!(
            applied.iter().any(|k| k == kind),
            "deploy/m2m-operator.yaml has no {kind}"
        );
    }
    if let (Some((namespace, name)), Some(policy)) = (service_account, policy) {
        policy_enforced(&namespace, &name, &policy).await;
    }
}

/// A client acting as `user` in `groups` (impersonation from the kubeconfig's admin).
pub async fn impersonating(user: &str, groups: Vec<String>) -> Client {
    let mut config = kube::Config::infer().await.expect("kubeconfig");
    config.auth_info.impersonate = Some(user.to_owned());
    config.auth_info.impersonate_groups = Some(groups);
    Client::try_from(config).expect("an impersonating client")
}

/// Waits (up to 60 s) until the API server refuses, by the policy `policy`, a dry-run create
/// of an unlabelled Secret made as the ServiceAccount `namespace`/`name`: RBAC allows that
/// create, so only the policy refuses it.
async fn policy_enforced(namespace: &str, name: &str, policy: &str) {
    let user = format!("system:serviceaccount:{namespace}:{name}");
    let client = impersonating(&user, service_account_groups(namespace)).await;
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let probe: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "m2m-policy-probe"},
        "type": "Opaque",
    }))
    .expect("a Secret");
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let outcome = match api.create(&params, &probe).await {
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains(policy) => return,
            Ok(_) => "accepted".to_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "the API server does not enforce the ValidatingAdmissionPolicy {policy} after 60s \
             (an unlabelled Secret created as {user}: {outcome}); does it run the \
             ValidatingAdmissionPolicy admission plugin?"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
