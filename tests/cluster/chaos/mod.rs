//! Chaos: apps are created and rotated while faults hit the operator: SIGKILLs at random times,
//! an API server restart, a second writer touching the same objects; each fault alone
//! (`faults.rs`), and all of them at once. Afterwards every invariant holds ([`Chaos::settle`]):
//! every app Ready, every Secret's secret gets a token, no client_id changed, no secret changed
//! except by a requested rotation, no orphaned hash, no Secret without owner.
//!
//! Sizes of the run with every fault: `M2M_CHAOS_APPS` (default 60), `M2M_CHAOS_ROTATIONS`
//! (default 12) and `M2M_CHAOS_KILLS` (default 8) in the test command; the full run is
//! `M2M_CHAOS_APPS=500 M2M_CHAOS_ROTATIONS=100 M2M_CHAOS_KILLS=20`. Each single fault runs with
//! half the apps and rotations.

mod faults;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use m2m_operator::{
    api::M2MApp,
    credentials::record::{COMPONENT_CLIENT_RECORD, ClientRecord, LABEL_COMPONENT},
};
use rand::Rng;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{
    common::{self, TEST_MANAGER, TestNamespace, wait_for},
    fixtures::*,
    http,
    operator::{OPERATOR_NAMESPACE, Operator},
};

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Retries `op` until it succeeds: the API server may be restarting.
async fn retry<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut last = String::new();
    for _ in 0..300 {
        match op().await {
            Ok(v) => return v,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what} failed for 60s: {last}");
}

/// The `(client_id, client_secret)` values seen in each app's Secret over the run.
type Seen = Arc<Mutex<BTreeMap<String, BTreeSet<(String, String)>>>>;

async fn observe(client: &Client, ns: &str, seen: &Seen) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    if let Ok(list) = secrets.list(&ListParams::default()).await {
        let mut seen = seen.lock().unwrap();
        for s in list.items {
            let d = data(&s);
            if let (Some(id), Some(secret)) = (d.get("client_id"), d.get("client_secret")) {
                let app = s.name_any().trim_end_matches("-credentials").to_owned();
                seen.entry(app)
                    .or_default()
                    .insert((id.clone(), secret.clone()));
            }
        }
    }
}

/// Which faults a run injects.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// SIGKILLs of the operator at random times (0: none): at least this many, and more while the
    /// creator and rotator work, up to `max_kills`.
    pub kills: usize,
    pub max_kills: usize,
    /// Restart the API server once (after the second kill, or mid-run without kills).
    pub apiserver_restart: bool,
    /// A second writer touching the apps, their Secrets and their client records.
    pub second_writer: bool,
}

/// One chaos run: an Organization and `n_apps` apps created (and `n_rotations` of them
/// rotated) by background tasks while [`Faults`] hit, and what the Secrets held meanwhile.
pub struct Chaos {
    client: Client,
    op: Operator,
    ns: TestNamespace,
    org: String,
    names: Vec<String>,
    n_rotations: usize,
    stop: CancellationToken,
    seen: Seen,
    creator: tokio::task::JoinHandle<()>,
    rotator: tokio::task::JoinHandle<()>,
    observer: tokio::task::JoinHandle<()>,
    intruder: Option<tokio::task::JoinHandle<u64>>,
}

impl Chaos {
    /// Starts the operator and the creator, rotator and observer (and the second writer).
    pub async fn start(name: &str, n_apps: usize, n_rotations: usize, faults: Faults) -> Self {
        let client = common::client().await;
        let op = Operator::start(&client).await;
        let ns = TestNamespace::new(&client, &format!("m2m-{name}")).await;
        let org = org_name(name);
        apply_org(
            &client,
            &org,
            json!({"code": format!("org_{}", common::suffix()), "namespaces": [ns.name]}),
        )
        .await;
        let names: Vec<String> = (0..n_apps).map(|i| format!("app-{i:04}")).collect();
        let spec = json!({"organizationRef": {"name": org}, "scopes": ["read"], "audiences": ["api"],
                          "rotation": {"gracePeriod": "1h"}});
        let stop = CancellationToken::new();
        let seen: Seen = Arc::default();
        let n_rotations = n_rotations.min(n_apps);
        Self {
            creator: tokio::spawn(create(client.clone(), ns.name.clone(), names.clone(), spec)),
            rotator: tokio::spawn(rotate(
                client.clone(),
                ns.name.clone(),
                names.clone(),
                n_rotations,
            )),
            observer: tokio::spawn(watch_secrets(
                client.clone(),
                ns.name.clone(),
                seen.clone(),
                stop.clone(),
            )),
            intruder: faults.second_writer.then(|| {
                tokio::spawn(intrude(
                    client.clone(),
                    ns.name.clone(),
                    names.clone(),
                    stop.clone(),
                ))
            }),
            client,
            op,
            ns,
            org,
            names,
            n_rotations,
            stop,
            seen,
        }
    }

    fn working(&self) -> bool {
        !(self.creator.is_finished() && self.rotator.is_finished())
    }

    /// SIGKILLs the operator at random times while the creator and rotator work (and restarts
    /// the API server once, after the second kill); returns (kills, API server restarts).
    pub async fn kill(&mut self, faults: Faults) -> (usize, usize) {
        let (mut kills, mut restarts) = (0, 0);
        while kills < faults.kills || (kills < faults.max_kills && self.working()) {
            let pause = rand::rng().random_range(300..2500);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            self.op.kill();
            kills += 1;
            if kills == 2 && faults.apiserver_restart {
                restart_apiserver().await;
                restarts += 1;
            }
            self.op = Operator::start(&self.client).await;
        }
        (kills, restarts)
    }

    /// Restarts the API server once, while the creator and rotator work.
    pub async fn restart_apiserver_mid_run(&mut self) {
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(500..2000))).await;
        restart_apiserver().await;
    }

    /// Waits for the creator and rotator, stops the others, waits until every app is Ready at
    /// its revision and checks every invariant; returns the second writer's writes.
    pub async fn settle(self) -> u64 {
        let Self {
            client,
            op,
            ns,
            org,
            names,
            n_rotations,
            stop,
            seen,
            creator,
            rotator,
            observer,
            intruder,
        } = self;
        let finish = Duration::from_secs(600);
        tokio::time::timeout(finish, async {
            creator.await.unwrap();
            rotator.await.unwrap();
        })
        .await
        .expect("every app created and every rotation requested");
        stop.cancel();
        let writes = match intruder {
            Some(task) => task.await.unwrap(),
            None => 0,
        };
        observer.await.unwrap();
        let rotated: BTreeSet<String> = names.iter().take(n_rotations).cloned().collect();
        let final_apps = wait_settled(&client, &ns.name, names.len(), &rotated).await;
        observe(&client, &ns.name, &seen).await;
        let seen = seen.lock().unwrap().clone();
        check_invariants(&client, &op, &ns.name, &final_apps, &rotated, &seen).await;
        delete_org(&client, &org).await;
        ns.delete().await;
        writes
    }
}

async fn restart_apiserver() {
    let root = common::repo_root();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(root.join("hack/cluster.sh"))
            .arg("restart-apiserver")
            .output()
            .expect("hack/cluster.sh restart-apiserver")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates every app, a few at a time.
async fn create(client: Client, ns: String, names: Vec<String>, spec: serde_json::Value) {
    let apps: Api<M2MApp> = Api::namespaced(client, &ns);
    for name in &names {
        let obj = json!({"apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
                         "metadata": {"name": name}, "spec": spec});
        let (params, patch) = (PatchParams::apply(TEST_MANAGER).force(), Patch::Apply(&obj));
        retry(&format!("create {name}"), || {
            apps.patch(name, &params, &patch)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Requests one rotation of each of the first apps once it has credentials.
async fn rotate(client: Client, ns: String, names: Vec<String>, n_rotations: usize) {
    let apps: Api<M2MApp> = Api::namespaced(client, &ns);
    for name in names.iter().take(n_rotations) {
        loop {
            let ready = apps
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|a| ready(&a));
            if ready.is_some_and(|(status, _)| status == "True") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let rotate = json!({"metadata": {"annotations": {"m2m.dev/rotate": "chaos"}}});
        let (params, patch) = (PatchParams::default(), Patch::Merge(&rotate));
        retry(&format!("rotate {name}"), || {
            apps.patch(name, &params, &patch)
        })
        .await;
    }
}

/// A second writer touching the same objects: app labels, the tenant Secrets' labels and the
/// client records' annotations, so the operator's writes meet conflicts. Returns its writes.
async fn intrude(client: Client, ns: String, names: Vec<String>, stop: CancellationToken) -> u64 {
    let apps: Api<M2MApp> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let records: Api<Secret> = Api::namespaced(client, OPERATOR_NAMESPACE);
    let mut writes = 0u64;
    while !stop.is_cancelled() {
        let name = &names[rand::rng().random_range(0..names.len())];
        let touch = json!({"metadata": {"labels": {"chaos/touch": writes.to_string()}}});
        let merge = Patch::Merge(&touch);
        let p = PatchParams::default();
        if apps.patch(name, &p, &merge).await.is_ok() {
            writes += 1;
        }
        if secrets
            .patch(&format!("{name}-credentials"), &p, &merge)
            .await
            .is_ok()
        {
            writes += 1;
        }
        if let Ok(Some(app)) = apps.get_opt(name).await {
            let record = format!("m2m-client-{}", uid(&app));
            let note = json!({"metadata": {"annotations": {"chaos/touch": writes.to_string()}}});
            if records
                .patch(&record, &p, &Patch::Merge(&note))
                .await
                .is_ok()
            {
                writes += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writes
}

async fn watch_secrets(client: Client, ns: String, seen: Seen, stop: CancellationToken) {
    while !stop.is_cancelled() {
        observe(&client, &ns, &seen).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until every app is Ready, the rotated ones at revision 2.
async fn wait_settled(
    client: &Client,
    ns: &str,
    n_apps: usize,
    rotated: &BTreeSet<String>,
) -> Vec<M2MApp> {
    let apps: Api<M2MApp> = Api::namespaced(client.clone(), ns);
    wait_for(
        "every app Ready at its revision",
        Duration::from_secs(180),
        || async {
            let list = apps
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items;
            let bad: Vec<String> = list
                .iter()
                .filter(|a| {
                    let want = if rotated.contains(&a.name_any()) {
                        2
                    } else {
                        1
                    };
                    let revision = a
                        .status
                        .as_ref()
                        .and_then(|s| s.rotation.as_ref())
                        .map(|r| r.revision);
                    ready(a).is_none_or(|(s, r)| s != "True" || r != "CredentialsIssued")
                        || revision != Some(want)
                })
                .map(|a| format!("{} {:?}", a.name_any(), ready(a)))
                .collect();
            if list.len() == n_apps && bad.is_empty() {
                Ok(list)
            } else {
                Err(format!(
                    "{} apps, not settled: {:?}",
                    list.len(),
                    &bad[..bad.len().min(5)]
                ))
            }
        },
    )
    .await
}

/// No client_id changed, no secret changed but by the requested rotation, every Secret owned by
/// its app and its secret getting a token, one client record per app, none orphaned.
async fn check_invariants(
    client: &Client,
    op: &Operator,
    ns: &str,
    final_apps: &[M2MApp],
    rotated: &BTreeSet<String>,
    seen: &BTreeMap<String, BTreeSet<(String, String)>>,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    for app in final_apps {
        let name = app.name_any();
        let status = app.status.as_ref().unwrap();
        let ids: BTreeSet<&String> = seen[&name].iter().map(|(id, _)| id).collect();
        assert_eq!(
            ids.len(),
            1,
            "{name}: one client_id over the whole run: {ids:?}"
        );
        assert_eq!(status.client_id.as_ref(), ids.into_iter().next());
        let secrets_seen = seen[&name].len();
        let allowed = if rotated.contains(&name) { 2 } else { 1 };
        assert!(
            secrets_seen <= allowed,
            "{name}: {secrets_seen} secrets seen, {allowed} allowed"
        );
        let secret = secrets.get(&format!("{name}-credentials")).await.unwrap();
        let owner = secret
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true));
        assert_eq!(
            owner.map(|o| &o.uid),
            app.metadata.uid.as_ref(),
            "{name}: Secret owned by its app"
        );
        let d = data(&secret);
        let (code, body) = http::token(&op.url(), &d["client_id"], &d["client_secret"], &[]).await;
        assert_eq!(code, 200, "{name}: {body}");
    }
    let records: Api<Secret> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let selector = format!("{LABEL_COMPONENT}={COMPONENT_CLIENT_RECORD}");
    let uids: BTreeSet<String> = final_apps.iter().map(uid).collect();
    let ours: Vec<ClientRecord> = records
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|s| ClientRecord::from_secret(s).ok())
        .filter(|r| r.app.namespace == ns)
        .collect();
    assert_eq!(ours.len(), final_apps.len(), "one record per app");
    assert!(
        ours.iter().all(|r| uids.contains(&r.app.uid)),
        "every record belongs to a live app"
    );
}

#[tokio::test]
async fn kills_an_api_server_restart_and_conflicting_writes_at_once_lose_nothing() {
    let n_apps = env_count("M2M_CHAOS_APPS", 60);
    let n_rotations = env_count("M2M_CHAOS_ROTATIONS", 12);
    let faults = Faults {
        kills: 4,
        max_kills: env_count("M2M_CHAOS_KILLS", 8).max(4),
        apiserver_restart: true,
        second_writer: true,
    };
    let mut chaos = Chaos::start("chaos", n_apps, n_rotations, faults).await;
    let (kills, restarts) = chaos.kill(faults).await;
    let writes = chaos.settle().await;
    eprintln!(
        "chaos: {n_apps} apps, {n_rotations} rotations, {kills} SIGKILLs, {restarts} API server \
         restart, {writes} conflicting writes; invariants checked"
    );
}
