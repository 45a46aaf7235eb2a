//! What the operator needs in a cluster, from the repository's own files: the CRDs of
//! `charts/m2m-operator/crds/`, its namespace, and the ServiceAccount and RBAC that
//! `deploy/m2m-operator.yaml` (rendered from the chart) declares. For the cluster tests and the
//! scale benchmarks; every function panics with what failed.

#![allow(clippy::expect_used)] // test and benchmark setup: a failure ends the run, loudly

use std::{path::PathBuf, time::Duration};

use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams},
    discovery::Scope,
    runtime::wait::{await_condition, conditions},
};
use serde::Deserialize;

/// The RBAC kinds taken from `deploy/m2m-operator.yaml`.
const RBAC_KINDS: [&str; 5] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// The repository (this crate's root).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The CRDs as checked in under `charts/m2m-operator/crds/`, by file name.
pub fn checked_in_crds() -> Vec<CustomResourceDefinition> {
    let dir = repo_root().join("charts/m2m-operator/crds");
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

/// Applies (server-side, as `manager`) the ServiceAccount and RBAC objects of
/// `deploy/m2m-operator.yaml`; panics unless it has one of each kind.
pub async fn operator_rbac(client: &Client, manager: &str) {
    let path = repo_root().join("deploy/m2m-operator.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut applied = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc).expect("a YAML document");
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_yaml::from_value(value).expect("a Kubernetes object");
        let Some(types) = obj.types.clone() else {
            continue;
        };
        if !RBAC_KINDS.contains(&types.kind.as_str()) {
            continue;
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
    for kind in RBAC_KINDS {
        assert!(
            applied.iter().any(|k| k == kind),
            "deploy/m2m-operator.yaml has no {kind}"
        );
    }
}
