//! Tenants in bulk: namespaces, Organizations (one namespace each) and M2MApps, created with
//! bounded concurrency, a watch that records when each app turns Ready, and deletion. Every
//! object carries the label `m2m.dev/bench=<prefix>`.

use std::{
    collections::HashMap,
    ops::Range,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
    runtime::watcher::{self, watcher},
};
use m2m_operator::api::{M2MApp, Organization, conditions::READY};
use serde_json::json;

pub const LABEL: &str = "m2m.dev/bench";
pub const AUDIENCE: &str = "https://api.bench.example";

/// A family of tenants: Organization `o` binds namespace `<prefix>-t<o>`, which holds its apps
/// `app-<k>`.
#[derive(Clone, Debug)]
pub struct Tenants {
    pub prefix: String,
    pub apps_per_org: usize,
    /// `spec.rotation.gracePeriod` of the apps (default: the CRD's, 1h).
    pub grace_period: Option<String>,
}

impl Tenants {
    pub fn new(prefix: &str, apps_per_org: usize) -> Self {
        Self {
            prefix: prefix.to_owned(),
            apps_per_org,
            grace_period: None,
        }
    }

    pub fn selector(&self) -> String {
        format!("{LABEL}={}", self.prefix)
    }

    pub fn namespace(&self, org: usize) -> String {
        format!("{}-t{org}", self.prefix)
    }

    pub fn org(&self, org: usize) -> String {
        format!("{}-o{org}", self.prefix)
    }

    pub fn app(&self, k: usize) -> String {
        format!("app-{k}")
    }

    /// The M2MApp object of app `k` of org `o`.
    pub fn app_object(&self, org: usize, k: usize) -> M2MApp {
        let mut spec = json!({
            "organizationRef": {"name": self.org(org)},
            "scopes": ["read"],
            "audiences": [AUDIENCE],
        });
        if let Some(grace) = &self.grace_period {
            spec["rotation"] = json!({"gracePeriod": grace});
        }
        serde_json::from_value(json!({
            "apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
            "metadata": {"name": self.app(k), "namespace": self.namespace(org),
                         "labels": {LABEL: self.prefix}},
            "spec": spec,
        }))
        .unwrap()
    }

    /// Namespaces and Organizations `orgs` (existing ones are kept).
    pub async fn create_orgs(&self, client: &Client, orgs: Range<usize>, concurrency: usize) {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let organizations: Api<Organization> = Api::all(client.clone());
        stream::iter(orgs)
            .map(|o| {
                let (namespaces, organizations) = (namespaces.clone(), organizations.clone());
                async move {
                    let ns: Namespace = serde_json::from_value(json!({
                        "metadata": {"name": self.namespace(o), "labels": {LABEL: self.prefix}}
                    }))
                    .unwrap();
                    ignore_exists(namespaces.create(&PostParams::default(), &ns).await);
                    let org: Organization = serde_json::from_value(json!({
                        "apiVersion": "m2m.dev/v1alpha1", "kind": "Organization",
                        "metadata": {"name": self.org(o), "labels": {LABEL: self.prefix}},
                        "spec": {"code": format!("{}_{o}", self.prefix),
                                 "namespaces": [self.namespace(o)],
                                 "allowedScopes": ["read", "write"]},
                    }))
                    .unwrap();
                    ignore_exists(organizations.create(&PostParams::default(), &org).await);
                }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<()>>()
            .await;
    }

    /// Every (org, app) pair of `orgs`, interleaved across the orgs (app 0 of each org first),
    /// as a user applying many tenants at once would send them.
    pub fn app_keys(&self, orgs: Range<usize>) -> Vec<(usize, usize)> {
        (0..self.apps_per_org)
            .flat_map(|k| orgs.clone().map(move |o| (o, k)))
            .collect()
    }

    /// Creates the apps of `orgs` with `concurrency` requests in flight; returns when each
    /// create returned, by `namespace/name`.
    pub async fn create_apps(
        &self,
        client: &Client,
        orgs: Range<usize>,
        concurrency: usize,
    ) -> HashMap<String, Instant> {
        stream::iter(self.app_keys(orgs))
            .map(|(o, k)| {
                let api: Api<M2MApp> = Api::namespaced(client.clone(), &self.namespace(o));
                let app = self.app_object(o, k);
                async move {
                    ignore_exists(api.create(&PostParams::default(), &app).await);
                    (
                        format!("{}/{}", self.namespace(o), self.app(k)),
                        Instant::now(),
                    )
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await
    }

    /// Deletes the Organizations and namespaces (their apps and Secrets go with them);
    /// `wait`: until the namespaces are gone.
    pub async fn delete(&self, client: &Client, wait: Option<Duration>) {
        let lp = ListParams::default().labels(&self.selector());
        let organizations: Api<Organization> = Api::all(client.clone());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let dp = DeleteParams::background();
        for org in organizations.list_metadata(&lp).await.unwrap().items {
            let _ = organizations.delete(&org.name_any(), &dp).await;
        }
        for ns in namespaces.list_metadata(&lp).await.unwrap().items {
            let _ = namespaces.delete(&ns.name_any(), &dp).await;
        }
        let Some(timeout) = wait else {
            return;
        };
        let deadline = Instant::now() + timeout;
        while !namespaces
            .list_metadata(&lp)
            .await
            .unwrap()
            .items
            .is_empty()
        {
            assert!(
                Instant::now() < deadline,
                "namespaces of {} not gone in {timeout:?}",
                self.prefix
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until the Organizations of this family that exist report `Ready=True`.
    pub async fn wait_orgs_ready(&self, client: &Client, count: usize, timeout: Duration) {
        let api: Api<Organization> = Api::all(client.clone());
        let lp = ListParams::default().labels(&self.selector());
        let deadline = Instant::now() + timeout;
        loop {
            let orgs = api.list(&lp).await.unwrap().items;
            let ready = orgs
                .iter()
                .filter(|o| {
                    o.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|c| c.type_ == READY && c.status == "True")
                    })
                })
                .count();
            if ready >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{ready} of {count} Organizations of {} Ready after {timeout:?}",
                self.prefix
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The `Authorization: Basic` value of the client whose credentials are in this Secret (never
/// printed).
pub async fn basic_auth(client: &Client, namespace: &str, secret: &str) -> String {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let s = api
        .get(secret)
        .await
        .unwrap_or_else(|e| panic!("reading Secret {namespace}/{secret}: {e}"));
    let data = s.data.unwrap_or_default();
    let field =
        |k: &str| String::from_utf8(data.get(k).map(|b| b.0.clone()).unwrap_or_default()).unwrap();
    let (id, secret) = (field("client_id"), field("client_secret"));
    assert!(
        !id.is_empty() && !secret.is_empty(),
        "Secret {namespace}/{} has no credentials",
        s.metadata.name.unwrap_or_default()
    );
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn ignore_exists<T>(result: Result<T, kube::Error>) {
    match result {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create: {e}"),
    }
}

/// Whether the app's Ready condition is True for its current generation.
pub fn is_ready(app: &M2MApp) -> bool {
    app.status.as_ref().is_some_and(|s| {
        s.observed_generation == app.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == READY && c.status == "True")
    })
}

/// A watch of the apps matching a label selector, recording when each first turned Ready.
pub struct ReadyWatch {
    ready: Arc<Mutex<HashMap<String, Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReadyWatch {
    /// Starts the watch and waits for its initial list.
    pub async fn start(client: &Client, selector: &str) -> Self {
        let api: Api<M2MApp> = Api::all(client.clone());
        let ready = Arc::new(Mutex::new(HashMap::new()));
        let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn({
            let ready = ready.clone();
            let config = watcher::Config::default().labels(selector);
            async move {
                let mut listed = Some(listed_tx);
                let mut events = std::pin::pin!(watcher(api, config));
                while let Ok(Some(event)) = events.try_next().await {
                    match event {
                        watcher::Event::Apply(app) | watcher::Event::InitApply(app)
                            if is_ready(&app) =>
                        {
                            let key = format!(
                                "{}/{}",
                                app.namespace().unwrap_or_default(),
                                app.name_any()
                            );
                            ready
                                .lock()
                                .unwrap()
                                .entry(key)
                                .or_insert_with(Instant::now);
                        }
                        watcher::Event::InitDone => {
                            if let Some(tx) = listed.take() {
                                let _ = tx.send(());
                            }
                        }
                        _ => {}
                    }
                }
            }
        });
        let _ = listed_rx.await;
        Self { ready, task }
    }

    pub fn count(&self) -> usize {
        self.ready.lock().unwrap().len()
    }

    /// When each app first turned Ready.
    pub fn times(&self) -> HashMap<String, Instant> {
        self.ready.lock().unwrap().clone()
    }

    /// Waits until `n` apps are Ready; returns when the last of them turned Ready.
    pub async fn wait(&self, n: usize, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let ready = self.ready.lock().unwrap();
                if ready.len() >= n {
                    return ready.values().copied().max().unwrap_or_else(Instant::now);
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} apps Ready after {timeout:?}",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ReadyWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
