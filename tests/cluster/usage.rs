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
    quotas::{TokenService, three_replicas},
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
