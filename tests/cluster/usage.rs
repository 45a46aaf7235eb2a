//! Previous-secret usage across replicas: a use on a non-leader reaches the leader's status
//! within seconds (through the replicas' usage reports), and
//! `spec.rotation.retirePreviousWhenUnusedFor` retires the previous secret once it has been
//! unused that long, and not before.

use std::time::{Duration, Instant};

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use m2m_operator::api::M2MApp;
use serde_json::json;

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    http,
    operator::Operator,
    replicas::{TokenService, three_replicas},
};

async fn rotate(client: &kube::Client, ns: &str, name: &str, value: &str) {
    let api: Api<M2MApp> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"annotations": {"m2m.dev/rotate": value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
}

async fn leader(ops: &[Operator]) -> usize {
    wait_for("a leader", Duration::from_secs(30), || async {
        ops.iter()
            .position(|op| op.log_text().contains("acquired the lease"))
            .ok_or_else(|| "none yet".to_owned())
    })
    .await
}

/// `(last used, uses)` of the previous secret in status, for `revision`.
async fn shown_use(client: &kube::Client, ns: &str, revision: i64) -> Option<(String, i64)> {
    let rotation = get_app(client, ns, "agent").await.status?.rotation?;
    (rotation.revision == revision).then_some(())?;
    let at = rotation.previous_secret_last_used_at?;
    Some((at.0.to_string(), rotation.previous_secret_uses.unwrap_or(0)))
}

#[tokio::test]
async fn a_previous_secret_used_on_a_standby_shows_in_status_and_is_retired_once_unused() {
    const IDLE: Duration = Duration::from_secs(12);
    let client = common::client().await;
    let service = TokenService::new(&client, 3).await;
    let ops = three_replicas(&client, &service).await;
    let leading = leader(&ops).await;
    let standbys: Vec<&Operator> = ops
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leading)
        .map(|(_, op)| op)
        .collect();
    let ns = TestNamespace::new(&client, "m2m-usage").await;
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({"audiences": ["api"], "rotation": {"gracePeriod": "10m", "retirePreviousWhenUnusedFor": "12s"}}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let (id, old) = credentials(&client, &ns.name, "agent").await;
    rotate(&client, &ns.name, "agent", "1").await;
    wait_for("the rotation", Duration::from_secs(20), || async {
        let (_, s) = credentials(&client, &ns.name, "agent").await;
        let revision = get_app(&client, &ns.name, "agent")
            .await
            .status
            .and_then(|s| s.rotation)
            .map(|r| r.revision);
        if s != old && revision == Some(2) {
            Ok(())
        } else {
            Err(format!("revision {revision:?}"))
        }
    })
    .await;
    assert_eq!(shown_use(&client, &ns.name, 2).await, None, "unused so far");

    // One use on a standby: the leader's status shows it within seconds.
    let (status, body) = http::token(&standbys[0].url(), &id, &old, &[]).await;
    assert_eq!(
        status, 200,
        "the previous secret works in its grace period: {body}"
    );
    let used = Instant::now();
    let (at, uses) = wait_for(
        "status.rotation.previousSecretLastUsedAt",
        Duration::from_secs(10),
        || async {
            shown_use(&client, &ns.name, 2)
                .await
                .ok_or_else(|| "not yet".to_owned())
        },
    )
    .await;
    let lag = used.elapsed();
    assert_eq!(uses, 1);
    assert!(lag < Duration::from_secs(5), "shown {lag:?} after the use");
    eprintln!("previous-secret use on a standby shown in status after {lag:?} ({at})");

    // Used every 4s for 16s on both standbys: never idle for 12s, so never retired.
    let mut last_use = Instant::now();
    for round in 0..4 {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let op = standbys[round % 2];
        let (status, body) = http::token(&op.url(), &id, &old, &[]).await;
        assert_eq!(
            status, 200,
            "round {round}: still in use, still valid: {body}"
        );
        last_use = Instant::now();
    }
    let uid = uid(&get_app(&client, &ns.name, "agent").await);
    // 8s after the last use: not yet.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let rec = record(&client, &uid).await.expect("record");
    assert!(
        rec.previous.is_some(),
        "retired after {:?} of 12s idle",
        last_use.elapsed()
    );
    // Then retired, about 12s after the last use (a report and a reconcile later).
    wait_for(
        "the previous secret to be retired",
        Duration::from_secs(15),
        || async {
            match record(&client, &uid).await {
                Some(r) if r.previous.is_none() => Ok(()),
                other => Err(format!("previous still there: {}", other.is_some())),
            }
        },
    )
    .await;
    let idle = last_use.elapsed();
    assert!(idle >= IDLE, "retired after only {idle:?} unused");
    assert!(
        idle < IDLE + Duration::from_secs(6),
        "retired {idle:?} after the last use"
    );
    eprintln!("previous secret retired {idle:?} after its last use (policy 12s)");
    wait_event(&client, &ns.name, "agent", "PreviousSecretRetired").await;
    for op in &ops {
        wait_for(
            "the old secret refused",
            Duration::from_secs(10),
            || async {
                match http::token(&op.url(), &id, &old, &[]).await.0 {
                    401 => Ok(()),
                    s => Err(format!("{s}")),
                }
            },
        )
        .await;
    }
    let app = get_app(&client, &ns.name, "agent").await;
    let rotation = app.status.and_then(|s| s.rotation).expect("rotation");
    assert_eq!(rotation.previous_secret_expires_at, None);
    assert!(rotation.previous_secret_uses.unwrap_or(0) >= 1);

    drop(ops);
    ns.delete().await;
    service.delete().await;
}

/// The API server's count of `verb` requests on `resource` (`/subresource`), all codes.
async fn api_requests(client: &kube::Client, verb: &str, resource: &str, subresource: &str) -> f64 {
    let request = axum::http::Request::get("/metrics")
        .body(Vec::new())
        .expect("a GET request");
    let text = client
        .request_text(request)
        .await
        .expect("the API server's /metrics");
    let want = [
        format!("verb=\"{verb}\""),
        format!("resource=\"{resource}\""),
        format!("subresource=\"{subresource}\""),
    ];
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| want.iter().all(|w| l.contains(w.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What reporting costs in API writes: `M2M_USAGE_APPS` apps (default 40; the figure in
/// docs/rotation.md is for 1,000) all using their previous secret on three replicas for
/// `M2M_USAGE_SECONDS` (default 20), with the default report interval of 5s. Asserts the bounds
/// (report writes per replica per minute, status writes per app) and prints the rates.
#[tokio::test]
async fn reporting_previous_secret_use_costs_bounded_api_writes() {
    let apps: usize = std::env::var("M2M_USAGE_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let seconds: u64 = std::env::var("M2M_USAGE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let client = common::client().await;
    let service = TokenService::new(&client, 3).await;
    let ops = crate::replicas::three_replicas_reporting_every(&client, &service, "5s").await;
    let ns = TestNamespace::new(&client, "m2m-usage-rate").await;
    let names: Vec<String> = (0..apps).map(|i| format!("app-{i}")).collect();
    for name in &names {
        apply_app(
            &client,
            &ns.name,
            name,
            json!({"audiences": ["api"], "rotation": {"gracePeriod": "1h"}}),
        )
        .await;
    }
    let api: Api<M2MApp> = Api::namespaced(client.clone(), &ns.name);
    let count_at = |revision: i64| {
        let api = api.clone();
        async move {
            let list = api
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let n = list
                .items
                .iter()
                .filter(|a| {
                    a.status
                        .as_ref()
                        .and_then(|s| s.rotation.as_ref())
                        .is_some_and(|r| r.revision == revision)
                })
                .count();
            if n == apps {
                Ok(())
            } else {
                Err(format!("{n} of {apps} at revision {revision}"))
            }
        }
    };
    wait_for(
        "every app issued",
        Duration::from_secs(60 + apps as u64 / 5),
        || count_at(1),
    )
    .await;
    let mut old = Vec::new();
    for name in &names {
        old.push(credentials(&client, &ns.name, name).await);
    }
    for name in &names {
        rotate(&client, &ns.name, name, "1").await;
    }
    wait_for(
        "every app rotated",
        Duration::from_secs(60 + apps as u64 / 5),
        || count_at(2),
    )
    .await;
    // Quiet before measuring: no reconcile left over from the rotations.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let reports_before = api_requests(&client, "APPLY", "configmaps", "").await
        + api_requests(&client, "PATCH", "configmaps", "").await;
    let status_before = api_requests(&client, "APPLY", "m2mapps", "status").await
        + api_requests(&client, "PATCH", "m2mapps", "status").await;
    let started = Instant::now();
    let mut requests = 0usize;
    // Eight clients at once, each through the replicas in turn, over every app's previous secret.
    while started.elapsed() < Duration::from_secs(seconds) {
        let batch: Vec<_> = (0..8)
            .map(|k| {
                let (id, secret) = old[(requests + k) % apps].clone();
                let url = ops[(requests + k) % ops.len()].url();
                tokio::spawn(async move { http::token(&url, &id, &secret, &[]).await.0 })
            })
            .collect();
        for task in batch {
            assert_eq!(
                task.await.expect("request"),
                200,
                "the previous secret works during its grace period"
            );
        }
        requests += 8;
    }
    let window = started.elapsed();
    // The last uses reach status within a refresh.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let report_writes = api_requests(&client, "APPLY", "configmaps", "").await
        + api_requests(&client, "PATCH", "configmaps", "").await
        - reports_before;
    let status_writes = api_requests(&client, "APPLY", "m2mapps", "status").await
        + api_requests(&client, "PATCH", "m2mapps", "status").await
        - status_before;
    let minutes = elapsed / 60.0;
    eprintln!(
        "usage reporting, {apps} apps, 3 replicas, {requests} previous-secret tokens in {window:?} \
         ({:.0}/s): {report_writes} report writes ({:.1}/min, {:.1}/min per replica), \
         {status_writes} status writes ({:.1}/min, {:.2} per app) over {elapsed:.1}s",
        requests as f64 / window.as_secs_f64(),
        report_writes / minutes,
        report_writes / minutes / 3.0,
        status_writes / minutes,
        status_writes / apps as f64,
    );
    // At most one report write per replica per 5s interval, plus the leading write of each.
    let report_bound = 3.0 * (elapsed / 5.0).ceil() + 3.0;
    assert!(
        report_writes <= report_bound,
        "{report_writes} report writes, bound {report_bound}"
    );
    // Per app: the first use, then at most one refresh per 60s.
    let refresh = m2m_operator::controller::usage_status::REFRESH.as_secs_f64();
    let status_bound = apps as f64 * (1.0 + (elapsed / refresh).ceil());
    assert!(
        status_writes <= status_bound,
        "{status_writes} status writes, bound {status_bound}"
    );
    let shown = api
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .iter()
        .filter(|a| {
            a.status
                .as_ref()
                .and_then(|s| s.rotation.as_ref())
                .is_some_and(|r| r.previous_secret_uses.unwrap_or(0) > 0)
        })
        .count();
    assert_eq!(shown, apps.min(requests), "every used app shows its use");

    drop(ops);
    ns.delete().await;
    service.delete().await;
}
