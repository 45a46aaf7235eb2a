//! Shared helpers: a client for the test control plane, CRD installation, random namespaces.

use std::{path::PathBuf, time::Duration};

use crate::install;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use tokio::sync::OnceCell;

pub const TEST_MANAGER: &str = "m2m-cluster-tests";

pub use crate::install::repo_root;

/// A client for the test control plane. Panics with a clear message when there is none.
pub async fn client() -> Client {
    let kubeconfig = std::env::var("KUBECONFIG").unwrap_or_default();
    assert!(
        !kubeconfig.is_empty(),
        "KUBECONFIG is not set: cluster tests and benchmarks need a control plane from \
         `hack/cluster.sh up`; run them with `hack/test.sh` or `hack/bench.sh`"
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

/// Installs `crds/*.yaml` with server-side apply (once per test run) and waits until Established.
pub async fn install_crds(client: &Client) {
    CRDS.get_or_init(|| install::crds(client, TEST_MANAGER))
        .await;
}

static RBAC: OnceCell<()> = OnceCell::const_new();

/// The operator's ServiceAccount and RBAC exactly as `deploy/m2m-operator.yaml` (rendered from
/// the chart) declares them, applied once per test run.
pub async fn install_operator_rbac(client: &Client) {
    RBAC.get_or_init(|| install::operator_rbac(client, TEST_MANAGER))
        .await;
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
