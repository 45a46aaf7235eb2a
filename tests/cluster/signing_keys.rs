//! A signing-key Secret the operator cannot read (a hand-edit typo, a key of a newer version
//! after a rollback) is never replaced: every replica keeps signing with the last key set it
//! read, says so (metric, Event, log), and picks the fixed Secret up again.

use std::{panic::AssertUnwindSafe, process::Command, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use futures::FutureExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use m2m_operator::token::{signing_keys::KEYS_SECRET, signing_keys::manager::REASON_UNREADABLE};
use serde_json::{Value, json};

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    http,
    operator::{ISSUER, OPERATOR_NAMESPACE, Operator, Options},
};

const UNREADABLE_METRIC: &str = "m2m_signing_keys_unreadable";

fn keys_api(client: &Client) -> Api<Secret> {
    Api::namespaced(client.clone(), OPERATOR_NAMESPACE)
}

async fn keys_json(client: &Client) -> Vec<u8> {
    let secret = keys_api(client).get(KEYS_SECRET).await.expect("key Secret");
    secret
        .data
        .and_then(|d| d.get("keys.json").map(|b| b.0.clone()))
        .expect("keys.json")
}

async fn set_keys_json(client: &Client, bytes: &[u8]) {
    let patch = json!({"data": {"keys.json": STANDARD.encode(bytes)}});
    keys_api(client)
        .patch(KEYS_SECRET, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch the key Secret");
}

/// The value of a gauge in an operator's `/metrics` (None when absent).
async fn gauge(op: &Operator, name: &str) -> Option<String> {
    let text = op.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_owned))
}

async fn wait_gauge(op: &Operator, value: &str) {
    wait_for(
        &format!("{UNREADABLE_METRIC} = {value} on {}", op.options.identity),
        Duration::from_secs(20),
        || async {
            match gauge(op, UNREADABLE_METRIC).await {
                Some(v) if v == value => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

/// The body of `/readyz`.
async fn readyz_body(op: &Operator) -> String {
    let url = format!("http://127.0.0.1:{}/readyz", op.admin_port);
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "2", &url])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .expect("curl task")
}

/// A token from `op`; returns it and its `kid`.
async fn token(op: &Operator, id: &str, secret: &str) -> (String, String) {
    let (status, body) = http::token(&op.url(), id, secret, &[]).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("token").to_owned();
    common::watch(&token);
    let kid = http::kid(&token);
    (token, kid)
}

/// The kids a replica publishes.
async fn published(op: &Operator) -> Vec<String> {
    let jwks = http::get_json(&format!("{}/.well-known/jwks.json", op.url())).await;
    jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

/// Sets `keys.json` to `corrupt` and checks everything the operator must do about it, then
/// puts `good` back and checks that it recovers.
async fn corrupt_and_fix(
    client: &Client,
    replicas: &[&Operator],
    app: (&str, &str),
    (good, corrupt, named): (&[u8], &[u8], &str),
) {
    let (old_token, kid) = token(replicas[0], app.0, app.1).await;
    set_keys_json(client, corrupt).await;

    // The leader refuses to write and says why, on the Secret, naming the problem.
    wait_for(
        "the SigningKeysUnreadable Event naming the problem",
        Duration::from_secs(30),
        || async {
            let events = event_messages(client, OPERATOR_NAMESPACE, KEYS_SECRET).await;
            let reasons = event_reasons(client, OPERATOR_NAMESPACE, KEYS_SECRET).await;
            if reasons.iter().any(|r| r == REASON_UNREADABLE)
                && events.iter().any(|m| m.contains(named))
            {
                Ok(())
            } else {
                Err(format!("{reasons:?} {events:?}"))
            }
        },
    )
    .await;
    assert_eq!(
        keys_json(client).await,
        corrupt,
        "the unreadable key set is not replaced"
    );

    for op in replicas {
        wait_gauge(op, "1").await;
        assert_eq!(op.readyz().await, Some(200), "still ready: it holds keys");
        assert!(
            published(op).await.contains(&kid),
            "the old kid is published"
        );
        let (_, now_kid) = token(op, app.0, app.1).await;
        assert_eq!(now_kid, kid, "still signing with the last readable key");
        http::verify(&op.url(), ISSUER, &old_token)
            .await
            .unwrap_or_else(|e| panic!("a token of before still verifies: {e}"));
        assert!(
            op.log_text()
                .contains("the signing-key Secret cannot be read"),
            "the log says so"
        );
    }

    set_keys_json(client, good).await;
    for op in replicas {
        wait_gauge(op, "0").await;
        let (_, now_kid) = token(op, app.0, app.1).await;
        assert_eq!(now_kid, kid, "the same key after the fix");
    }
}

/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test]
async fn an_unreadable_key_secret_is_never_replaced_and_every_replica_keeps_signing() {
    let client = common::client().await;
    let leader = Operator::start(&client).await;
    let standby = Operator::start_with(
        &client,
        Options {
            lease_name: leader.options.lease_name.clone(),
            ..Options::default()
        },
    )
    .await;
    let ns = TestNamespace::new(&client, "m2m-keys").await;
    let org = org_name("keys");
    apply_org(
        &client,
        &org,
        json!({"code": format!("org_{}", common::suffix()), "namespaces": [ns.name]}),
    )
    .await;
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({"organizationRef": {"name": org}, "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let (id, secret) = credentials(&client, &ns.name, "agent").await;
    let good = keys_json(&client).await;

    // A newer version's algorithm: the rollback case.
    let mut newer: Value = serde_json::from_slice(&good).expect("keys.json");
    let mut entry = newer["keys"][0].clone();
    entry["alg"] = json!("PS512");
    newer["keys"].as_array_mut().expect("keys").push(entry);
    let newer = serde_json::to_vec(&newer).expect("json");

    let run = AssertUnwindSafe(async {
        let replicas = [&leader, &standby];
        // A hand edit that broke the JSON.
        corrupt_and_fix(
            &client,
            &replicas,
            (&id, &secret),
            (
                &good,
                b"{\"keys\": [ {\"alg\": \"ES256\",, ",
                "not valid JSON",
            ),
        )
        .await;
        corrupt_and_fix(&client, &replicas, (&id, &secret), (&good, &newer, "PS512")).await;

        // A replica that starts while the Secret is unreadable has nothing to sign with: it
        // says so and stays unready, then becomes ready once the Secret is fixed.
        set_keys_json(&client, b"not json").await;
        let mut fresh = Operator::spawn(Options {
            lease_name: leader.options.lease_name.clone(),
            ..Options::default()
        });
        wait_for(
            "the fresh replica's log line",
            Duration::from_secs(60),
            || async {
                let log = fresh.log_text();
                if log.contains("holds no earlier key set") && log.contains("caches synced") {
                    Ok(())
                } else {
                    Err(fresh.log_tail())
                }
            },
        )
        .await;
        assert_eq!(fresh.readyz().await, Some(503));
        assert!(
            readyz_body(&fresh).await.contains("signing-keys"),
            "{}",
            readyz_body(&fresh).await
        );
        set_keys_json(&client, &good).await;
        fresh.wait_ready().await;
        let (_, kid) = token(&fresh, &id, &secret).await;
        assert!(published(&leader).await.contains(&kid));
    })
    .catch_unwind()
    .await;
    if run.is_err() {
        // Every later test needs a readable key Secret.
        set_keys_json(&client, &good).await;
    }
    delete_org(&client, &org).await;
    ns.delete().await;
    if let Err(panic) = run {
        std::panic::resume_unwind(panic);
    }
}
