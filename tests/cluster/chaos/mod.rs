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
mod invariants;
use invariants::{check_invariants, wait_settled};
mod workload;
use workload::{create, intrude, rotate, watch_secrets};

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt, api::ListParams};
use rand::Rng;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{
    common::{self, TestNamespace},
    fixtures::*,
    operator::Operator,
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
