//! High availability: several replicas against one API server, leader failover, and a SIGTERM
//! that drops no request the replica had started.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    http::{self, HeldRequest, Outcome},
    operator::{ISSUER, OPERATOR_NAMESPACE, Operator, Options},
};

async fn lease_holder(client: &kube::Client, name: &str) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    api.get_opt(name)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// Asserts each operator issues a token for the app that verifies against its own JWKS.
async fn tokens_from_all(ops: &[&Operator], id: &str, secret: &str) {
    for op in ops {
        let (status, body) = http::token(&op.url(), id, secret, &[]).await;
        assert_eq!(status, 200, "token from {}: {body}", op.options.identity);
        let token = body["access_token"].as_str().expect("access_token");
        http::verify(&op.url(), ISSUER, token)
            .await
            .unwrap_or_else(|e| panic!("token from {} does not verify: {e}", op.options.identity));
    }
}

#[tokio::test]
async fn three_replicas_one_leader_all_serve_tokens_and_a_standby_takes_over() {
    const LEASE_SECS: u64 = 6;
    let client = common::client().await;
    let ns = TestNamespace::new(&client, "m2m-ha").await;
    let lease = format!("m2m-lease-{}", common::suffix());
    let options = |id: &str| Options {
        lease_name: lease.clone(),
        identity: format!("{id}-{}", common::suffix()),
        lease_duration: "6s",
        extra_env: Vec::new(),
        ..Options::default()
    };
    let mut ops = vec![
        Operator::start_with(&client, options("first")).await,
        Operator::start_with(&client, options("second")).await,
        Operator::start_with(&client, options("third")).await,
    ];
    let holder = wait_for("a lease holder", Duration::from_secs(20), || async {
        lease_holder(&client, &lease)
            .await
            .ok_or_else(|| "none".to_owned())
    })
    .await;
    let leader_at = ops
        .iter()
        .position(|op| op.options.identity == holder)
        .expect("the holder is one of the three");

    apply_app(&client, &ns.name, "before", json!({"audiences": ["api"]})).await;
    wait_app_reason(&client, &ns.name, "before", "True", "CredentialsIssued").await;
    let (id, secret) = credentials(&client, &ns.name, "before").await;
    tokens_from_all(&ops.iter().collect::<Vec<_>>(), &id, &secret).await;
    let leaders: Vec<_> = ops
        .iter()
        .filter(|op| op.log_text().contains("acquired the lease"))
        .map(|op| op.options.identity.clone())
        .collect();
    assert_eq!(
        leaders,
        std::slice::from_ref(&holder),
        "exactly one replica ever led"
    );

    let mut leader = ops.remove(leader_at);
    leader.kill();
    let killed_at = Instant::now();
    let new_holder = wait_for(
        "a standby to take the lease",
        Duration::from_secs(LEASE_SECS * 3),
        || async {
            match lease_holder(&client, &lease).await {
                Some(h) if h != holder => Ok(h),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let took = killed_at.elapsed();
    // The lease is renewed 2s before it expires, so it expires at most LEASE_SECS after the
    // kill; the standby's next attempt then takes it (1s of margin for a loaded machine).
    assert!(
        took <= Duration::from_secs(LEASE_SECS + 3),
        "takeover took {took:?} with a {LEASE_SECS}s lease"
    );
    assert!(
        ops.iter().any(|op| op.options.identity == new_holder),
        "the new holder {new_holder} is a surviving replica"
    );

    apply_app(&client, &ns.name, "after", json!({"audiences": ["api"]})).await;
    wait_app_reason(&client, &ns.name, "after", "True", "CredentialsIssued").await;
    let (after_id, after_secret) = credentials(&client, &ns.name, "after").await;
    tokens_from_all(&ops.iter().collect::<Vec<_>>(), &after_id, &after_secret).await;
    assert_eq!(
        credentials(&client, &ns.name, "before").await,
        (id, secret),
        "no credentials regenerated on takeover"
    );
    drop(ops);
    ns.delete().await;
}

/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test]
async fn sigterm_under_load_turns_unready_then_drains_without_dropping_a_started_request() {
    const DELAY: Duration = Duration::from_secs(2);
    let client = common::client().await;
    let ns = TestNamespace::new(&client, "m2m-drain").await;
    let mut options = Options::default();
    options
        .extra_env
        .push(("M2M_SHUTDOWN_DELAY".into(), "2s".into()));
    let mut op = Operator::start_with(&client, options).await;
    apply_app(&client, &ns.name, "agent", json!({"audiences": ["api"]})).await;
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let (id, secret) = credentials(&client, &ns.name, "agent").await;
    let port = op.token_port;
    assert_eq!(
        http::token_once(port, &id, &secret).await,
        Outcome::Status(200)
    );

    // Load as a Service sends it: 4 clients, each sending requests back to back until the
    // endpoint is seen unready (the Service would then stop routing to it).
    let unready = tokio_util::sync::CancellationToken::new();
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (id, secret, unready) = (id.clone(), secret.clone(), unready.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while !unready.is_cancelled() {
                    outcomes.push(http::token_once(port, &id, &secret).await);
                }
                outcomes
            })
        })
        .collect();
    // Requests the replica has started (headers and half the body read) when SIGTERM arrives.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(HeldRequest::start(port, &id, &secret).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    op.send_term();
    let termed_at = Instant::now();
    wait_for("/readyz to fail", Duration::from_secs(2), || async {
        match op.readyz().await {
            Some(503) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    unready.cancel();
    let mut outcomes = Vec::new();
    for task in load {
        outcomes.extend(task.await.expect("load task"));
    }
    assert!(
        outcomes.len() > 10,
        "the load ran: {} requests",
        outcomes.len()
    );
    let bad: Vec<_> = outcomes
        .iter()
        .filter(|o| **o != Outcome::Status(200))
        .collect();
    assert!(
        bad.is_empty(),
        "every request sent before the replica was seen unready got a token; failures: {bad:?}"
    );

    // After the delay the listener closes: new connections are refused, started requests live.
    wait_for("the listener to close", DELAY * 3, || async {
        match http::token_once(port, &id, &secret).await {
            Outcome::Refused => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(termed_at.elapsed() >= DELAY, "served for the whole delay");
    for request in held {
        assert_eq!(
            request.finish().await,
            Ok(200),
            "a request started before SIGTERM completes after the listener closed"
        );
    }
    let status = op
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits within the termination grace");
    assert!(status.success(), "exit status {status}");
    let log = op.log_text();
    assert!(log.contains("released the lease"), "log:\n{log}");
    assert_eq!(
        lease_holder(&client, &op.options.lease_name).await,
        None,
        "the lease is free for the next leader"
    );
    ns.delete().await;
}
