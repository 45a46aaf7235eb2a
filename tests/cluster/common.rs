//! Shared helpers: a client for the test control plane, CRD installation, random namespaces.

use std::{path::PathBuf, time::Duration};

use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams},
    discovery::Scope,
    runtime::wait::{await_condition, conditions},
};
use serde::Deserialize;
use tokio::sync::OnceCell;

pub const TEST_MANAGER: &str = "m2m-cluster-tests";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A client for the test control plane. Panics with a clear message when there is none.
pub async fn client() -> Client {
    let kubeconfig = std::env::var("KUBECONFIG").unwrap_or_default();
    assert!(
        !kubeconfig.is_empty(),
        "KUBECONFIG is not set: cluster tests need the control plane from `hack/cluster.sh up`; \
         run them with `hack/test.sh`"
    );
    let client = Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("cannot build a client from KUBECONFIG={kubeconfig}: {e}"));
    client.apiserver_version().await.unwrap_or_else(|e| {
        panic!("the API server from KUBECONFIG={kubeconfig} does not answer: {e}")
    });
    client
}

static CRDS: OnceCell<()> = OnceCell::const_new();

/// Installs `charts/m2m-operator/crds/*.yaml` with server-side apply (once per test run) and waits until Established.
pub async fn install_crds(client: &Client) {
    CRDS.get_or_init(|| async {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in checked_in_crds() {
            let name = crd.name_any();
            api.patch(
                &name,
                &PatchParams::apply(TEST_MANAGER).force(),
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
    })
    .await;
}

static RBAC: OnceCell<()> = OnceCell::const_new();

/// The operator's ServiceAccount and RBAC exactly as `deploy/m2m-operator.yaml` (rendered from
/// the chart) declares them, applied once per test run.
pub async fn install_operator_rbac(client: &Client) {
    RBAC.get_or_init(|| async {
        let path = repo_root().join("deploy/m2m-operator.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let kinds = [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
        ];
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
            if !kinds.contains(&types.kind.as_str()) {
                continue;
            }
            let gvk = GroupVersionKind::try_from(&types).expect("apiVersion and kind");
            let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
                .await
                .unwrap_or_else(|e| panic!("discovering {gvk:?}: {e}"));
            let api: Api<DynamicObject> = match (caps.scope, obj.namespace()) {
                (Scope::Namespaced, Some(ns)) => {
                    Api::namespaced_with(client.clone(), &ns, &resource)
                }
                (Scope::Namespaced, None) => {
                    panic!("{} {} has no namespace", types.kind, obj.name_any())
                }
                (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
            };
            api.patch(
                &obj.name_any(),
                &PatchParams::apply(TEST_MANAGER).force(),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap_or_else(|e| panic!("applying {} {}: {e}", types.kind, obj.name_any()));
            applied.push(types.kind);
        }
        for kind in kinds {
            assert!(
                applied.iter().any(|k| k == kind),
                "deploy/m2m-operator.yaml has no {kind}"
            );
        }
    })
    .await;
}

/// The CRDs as checked in under `charts/m2m-operator/crds/`.
pub fn checked_in_crds() -> Vec<CustomResourceDefinition> {
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("charts/m2m-operator/crds"))
        .expect("charts/m2m-operator/crds/ exists")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("read CRD");
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

/// The leak scan's folder (`M2M_LEAK_DIR`, set by `hack/test.sh`): tests write into it every
/// secret, hash and token they see (`watch`), every error body (`bodies`), the Events and
/// statuses of each namespace and Organization before deleting it (`objects/`), and the
/// operators' logs (`logs/`). `hack/leak-scan.sh` then searches everything for the watched values.
pub fn leak_dir() -> Option<PathBuf> {
    std::env::var_os("M2M_LEAK_DIR").map(PathBuf::from)
}

fn leak_append(file: &str, text: &str) {
    if let Some(dir) = leak_dir() {
        use std::io::Write;
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(file))
        {
            let _ = writeln!(f, "{text}");
        }
    }
}

/// Records a value that must never appear in a log, Event, status or error body.
pub fn watch(value: &str) {
    if !value.is_empty() {
        leak_append("watch", value);
    }
}

/// Records an error response body for the leak scan.
pub fn error_body(body: &str) {
    leak_append("bodies", &body.replace('\n', " "));
}

/// Saves a JSON dump of objects for the leak scan.
pub fn save_objects(name: &str, value: &serde_json::Value) {
    if let Some(dir) = leak_dir() {
        let dir = dir.join("objects");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{name}.json")), value.to_string());
    }
}

/// A short random suffix for names that must not collide between tests and runs.
pub fn suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..6)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect()
}

/// A fresh namespace for one test, deleted by [`TestNamespace::delete`].
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn new(client: &Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{}", suffix());
        let api: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"m2m.dev/test": "true"}}
        }))
        .expect("namespace object");
        api.create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        Self {
            name,
            client: client.clone(),
        }
    }

    pub async fn delete(self) {
        if leak_dir().is_some() {
            // Events and statuses vanish with the namespace: keep them for the leak scan.
            let events: Api<k8s_openapi::api::core::v1::Event> =
                Api::namespaced(self.client.clone(), &self.name);
            let apps: Api<m2m_operator::api::M2MApp> =
                Api::namespaced(self.client.clone(), &self.name);
            let lp = kube::api::ListParams::default();
            let dump = serde_json::json!({
                "events": events.list(&lp).await.map(|l| l.items).unwrap_or_default(),
                "apps": apps.list(&lp).await.map(|l| l.items).unwrap_or_default(),
            });
            save_objects(&format!("ns-{}", self.name), &dump);
        }
        let api: Api<Namespace> = Api::all(self.client);
        let _ = api.delete(&self.name, &DeleteParams::default()).await;
    }
}

/// Polls `probe` until it returns `Ok`, panicking after `timeout` with the last state it saw.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(state) => {
                if tokio::time::Instant::now() >= deadline {
                    panic!("timed out after {timeout:?} waiting for {what}; last seen: {state}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
