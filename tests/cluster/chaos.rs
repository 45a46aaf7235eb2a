//! Chaos: apps are created and rotated while the operator is SIGKILLed at random times, the API
//! server restarts once and a second writer touches the same objects. Afterwards every
//! invariant holds: every app Ready, every Secret's secret gets a token, no client_id changed,
//! no secret changed except by a requested rotation, no orphaned hash, no Secret without owner.
//!
//! Sizes: `M2M_CHAOS_APPS` (default 60), `M2M_CHAOS_ROTATIONS` (default 12) and
//! `M2M_CHAOS_KILLS` (default 8) in the test command; the full run is
//! `M2M_CHAOS_APPS=500 M2M_CHAOS_ROTATIONS=100 M2M_CHAOS_KILLS=20`.

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

#[tokio::test]
async fn kills_an_api_server_restart_and_conflicting_writes_lose_nothing() {
    let n_apps = env_count("M2M_CHAOS_APPS", 60);
    let n_rotations = env_count("M2M_CHAOS_ROTATIONS", 12).min(n_apps);
    let client = common::client().await;
    let mut op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-chaos").await;
    let org = org_name("chaos");
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

    // Creates every app, a few at a time.
    let creator = tokio::spawn({
        let (client, ns, names, spec) =
            (client.clone(), ns.name.clone(), names.clone(), spec.clone());
        async move {
            let apps: Api<M2MApp> = Api::namespaced(client, &ns);
            for name in &names {
                let obj = json!({"apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
                                 "metadata": {"name": name}, "spec": spec});
                let (params, patch) =
                    (PatchParams::apply(TEST_MANAGER).force(), Patch::Apply(&obj));
                retry(&format!("create {name}"), || {
                    apps.patch(name, &params, &patch)
                })
                .await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    // Requests one rotation of each of the first apps once it has credentials.
    let rotator = tokio::spawn({
        let (client, ns, names) = (client.clone(), ns.name.clone(), names.clone());
        async move {
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
    });
    // A second writer touching the same objects: app labels, the tenant Secrets' labels and the
    // client records' annotations, so the operator's writes meet conflicts.
    let intruder = tokio::spawn({
        let (client, ns, names, stop) =
            (client.clone(), ns.name.clone(), names.clone(), stop.clone());
        async move {
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
                    let note =
                        json!({"metadata": {"annotations": {"chaos/touch": writes.to_string()}}});
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
    });
    let observer = tokio::spawn({
        let (client, ns, seen, stop) =
            (client.clone(), ns.name.clone(), seen.clone(), stop.clone());
        async move {
            while !stop.is_cancelled() {
                observe(&client, &ns, &seen).await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });

    // The chaos: SIGKILL the operator at random times while the creator and rotator work (at
    // least 4 times, at most M2M_CHAOS_KILLS), restarting the API server once, after the second.
    let max_kills = env_count("M2M_CHAOS_KILLS", 8).max(4);
    let mut kills = 0;
    let mut apiserver_restarts = 0;
    while kills < 4 || (kills < max_kills && !(creator.is_finished() && rotator.is_finished())) {
        let pause = rand::rng().random_range(300..2500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        op.kill();
        kills += 1;
        if kills == 2 {
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
            apiserver_restarts += 1;
        }
        op = Operator::start(&client).await;
    }
    let finish = Duration::from_secs(600);
    tokio::time::timeout(finish, async {
        creator.await.unwrap();
        rotator.await.unwrap();
    })
    .await
    .expect("every app created and every rotation requested");
    stop.cancel();
    let intruder_writes = intruder.await.unwrap();
    observer.await.unwrap();

    // Settle: every app Ready, the rotated ones at revision 2.
    let apps: Api<M2MApp> = Api::namespaced(client.clone(), &ns.name);
    let rotated: BTreeSet<&String> = names.iter().take(n_rotations).collect();
    let final_apps = wait_for(
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
    .await;
    observe(&client, &ns.name, &seen).await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let seen = seen.lock().unwrap().clone();
    let mut checked = 0;
    for app in &final_apps {
        let name = app.name_any();
        let status = app.status.as_ref().unwrap();
        // No client_id changed.
        let ids: BTreeSet<&String> = seen[&name].iter().map(|(id, _)| id).collect();
        assert_eq!(
            ids.len(),
            1,
            "{name}: one client_id over the whole run: {ids:?}"
        );
        assert_eq!(status.client_id.as_ref(), ids.into_iter().next());
        // No secret changed except by the requested rotation.
        let secrets_seen = seen[&name].len();
        let allowed = if rotated.contains(&name) { 2 } else { 1 };
        assert!(
            secrets_seen <= allowed,
            "{name}: {secrets_seen} secrets seen, {allowed} allowed"
        );
        // The Secret is owned by its app.
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
        // Its secret gets a token.
        let d = data(&secret);
        let (code, body) = http::token(&op.url(), &d["client_id"], &d["client_secret"], &[]).await;
        assert_eq!(code, 200, "{name}: {body}");
        checked += 1;
    }
    // No orphaned hash: one client record per app of this namespace, each for a live app.
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
        .filter(|r| r.app.namespace == ns.name)
        .collect();
    assert_eq!(ours.len(), n_apps, "one record per app");
    assert!(
        ours.iter().all(|r| uids.contains(&r.app.uid)),
        "every record belongs to a live app"
    );

    eprintln!(
        "chaos: {n_apps} apps, {n_rotations} rotations, {kills} SIGKILLs, {apiserver_restarts} API server restart, \
         {intruder_writes} conflicting writes; invariants checked on {checked} apps and {} records",
        ours.len()
    );
    delete_org(&client, &org).await;
    ns.delete().await;
}
