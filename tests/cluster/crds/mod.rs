//! The CRDs on the real API server: installation, examples, schema and CEL validation, and
//! printer columns.

mod invalid;

use std::process::Command;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams},
    core::{Status, discovery},
};
use m2m_operator::api::{M2MApp, Organization};
use serde_json::{Value, json};

use crate::common::{self, TEST_MANAGER, TestNamespace};

#[tokio::test]
async fn crds_install_with_server_side_apply_and_become_established() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let api: Api<CustomResourceDefinition> = Api::all(client);
    for name in ["organizations.m2m.dev", "m2mapps.m2m.dev"] {
        let crd = api
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get {name}: {e}"));
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "{name} is not Established");
    }
}

fn api_resource(kind: &str) -> ApiResource {
    match kind {
        "Organization" => kube::api::ApiResource::erase::<Organization>(&()),
        "M2MApp" => kube::api::ApiResource::erase::<M2MApp>(&()),
        other => panic!("no such kind {other}"),
    }
}

/// Server-side applies `obj` (strict field validation, like `kubectl apply --server-side`).
pub(crate) async fn apply(
    client: &Client,
    obj: &Value,
    dry_run: bool,
) -> Result<DynamicObject, kube::Error> {
    let kind = obj["kind"].as_str().expect("kind");
    let ar = api_resource(kind);
    let name = obj["metadata"]["name"].as_str().expect("name");
    let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let mut params = PatchParams::apply(TEST_MANAGER).force().validation_strict();
    params.dry_run = dry_run;
    api.patch(name, &params, &Patch::Apply(obj)).await
}

pub(crate) fn org(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "m2m.dev/v1alpha1", "kind": "Organization", "metadata": {"name": name}, "spec": spec})
}

pub(crate) fn app(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
           "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

pub(crate) fn rejection(result: Result<DynamicObject, kube::Error>, what: &str) -> Status {
    match result {
        Ok(obj) => panic!(
            "{what}: the API server accepted {}",
            serde_json::to_string(&obj).unwrap_or_default()
        ),
        Err(kube::Error::Api(status)) => *status,
        Err(other) => panic!("{what}: unexpected error {other}"),
    }
}

#[tokio::test]
async fn every_example_manifest_is_accepted() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::new(&client, "m2m-examples").await;
    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");

    let mut files: Vec<_> = std::fs::read_dir(common::repo_root().join("examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "examples/ has no manifests");
    let mut count = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read example");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = <Value as serde::Deserialize>::deserialize(doc).expect("YAML document");
            if value.is_null() {
                continue;
            }
            let mut obj: DynamicObject = serde_json::from_value(value).expect("Kubernetes object");
            let types = obj.types.clone().expect("apiVersion and kind");
            let gvk = GroupVersionKind::try_from(&types).expect("gvk");
            let (ar, caps) = discovery
                .resolve_gvk(&gvk)
                .unwrap_or_else(|| panic!("{}: unknown kind {gvk:?}", file.display()));
            let api: Api<DynamicObject> = if caps.scope == discovery::Scope::Namespaced {
                // The examples' own namespaces are only created by the demo; dry-run here.
                obj.metadata.namespace = Some(ns.name.clone());
                Api::namespaced_with(client.clone(), &ns.name, &ar)
            } else {
                Api::all_with(client.clone(), &ar)
            };
            let mut params = PatchParams::apply(TEST_MANAGER).force().validation_strict();
            params.dry_run = true;
            api.patch(&obj.name_any(), &params, &Patch::Apply(&obj))
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "{}: {} {} refused: {e}",
                        file.display(),
                        gvk.kind,
                        obj.name_any()
                    )
                });
            count += 1;
        }
    }
    assert!(
        count >= 8,
        "expected at least 8 example objects, found {count}"
    );
    ns.delete().await;
}

#[tokio::test]
async fn defaults_are_applied_by_the_api_server() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::new(&client, "m2m-defaults").await;
    let obj = app(
        &ns.name,
        "defaults",
        json!({"audiences": ["api"], "rotation": {"every": "720h"}}),
    );
    let created = apply(&client, &obj, false).await.expect("create app");
    let app: M2MApp =
        serde_json::from_value(serde_json::to_value(&created).expect("json")).expect("typed app");
    assert_eq!(app.spec.token_lifetime, "1h");
    assert_eq!(app.spec.rotation.expect("rotation").grace_period, "1h");
    assert!(!app.spec.disabled);
    ns.delete().await;
}

#[tokio::test]
async fn kubectl_get_shows_the_printer_columns() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::new(&client, "m2m-columns").await;
    let org_name = format!("columns-{}", common::suffix());
    apply(
        &client,
        &org(&org_name, json!({"namespaces": [ns.name]})),
        false,
    )
    .await
    .expect("org");
    let spec = json!({"organizationRef": {"name": org_name}, "audiences": ["api"]});
    apply(&client, &app(&ns.name, "columns", spec), false)
        .await
        .expect("app");

    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl")
            .args(args)
            .output()
            .expect("run kubectl (hack/test.sh puts it on PATH)");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let orgs = kubectl(&["get", "org", &org_name]);
    let header: Vec<&str> = orgs
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "CODE", "SUSPENDED", "APPS", "READY", "AGE"],
        "{orgs}"
    );
    let apps = kubectl(&["get", "m2m", "-n", &ns.name]);
    let header: Vec<&str> = apps
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "ORG",
            "CLIENT-ID",
            "SECRET",
            "READY",
            "REVISION",
            "AGE"
        ],
        "{apps}"
    );
    assert!(
        apps.lines().nth(1).unwrap_or_default().contains(&org_name),
        "{apps}"
    );
    // Both kinds are in the m2m category.
    let both = kubectl(&["get", "m2m,org", "-A"]);
    assert!(
        both.contains("m2mapp.m2m.dev/columns") || both.contains("columns"),
        "{both}"
    );
    let wide = kubectl(&["get", "m2m", "-n", &ns.name, "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap_or_default().contains("REASON"),
        "{wide}"
    );

    let orgs_api: Api<Organization> = Api::all(client.clone());
    let _ = orgs_api.delete(&org_name, &DeleteParams::default()).await;
    ns.delete().await;
}
