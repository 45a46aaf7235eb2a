//! Drift is repaired with Events; restarts change nothing and write nothing.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};
use m2m_operator::credentials::hash::verify;
use serde_json::json;

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    operator::{Operator, Options},
};

/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test]
async fn drift_is_repaired_with_events() {
    let client = common::client().await;
    let _op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-drift").await;
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({"scopes": ["read"], "audiences": ["api"]}),
    )
    .await;
    let app = wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let original = data(
        &get_secret(&client, &ns.name, "agent-credentials")
            .await
            .unwrap(),
    );

    // Deleted: recreated with a new secret.
    secrets
        .delete("agent-credentials", &DeleteParams::default())
        .await
        .expect("delete Secret");
    let recreated = wait_for("Secret recreated", Duration::from_secs(20), || async {
        get_secret(&client, &ns.name, "agent-credentials")
            .await
            .map(|s| data(&s))
            .ok_or_else(|| "missing".to_owned())
    })
    .await;
    assert_ne!(
        recreated["client_secret"], original["client_secret"],
        "a deleted Secret gets a fresh secret"
    );
    assert_eq!(
        recreated["client_id"], original["client_id"],
        "the client id is stable"
    );
    wait_event(&client, &ns.name, "agent", "SecretRepaired").await;
    let rec = wait_for(
        "record verifies the new secret",
        Duration::from_secs(10),
        || async {
            let rec = record(&client, &uid(&app)).await.ok_or("no record")?;
            if verify(&recreated["client_secret"], rec.current.as_ref().unwrap()) {
                Ok(rec)
            } else {
                Err("old hash".to_owned())
            }
        },
    )
    .await;
    assert!(!verify(
        &original["client_secret"],
        rec.current.as_ref().unwrap()
    ));

    // Another key edited: set back, secret unchanged.
    let edit = json!({"stringData": {"scope": "admin"}});
    secrets
        .patch(
            "agent-credentials",
            &PatchParams::default(),
            &Patch::Merge(&edit),
        )
        .await
        .expect("edit scope");
    wait_for("scope set back", Duration::from_secs(20), || async {
        let d = data(
            &get_secret(&client, &ns.name, "agent-credentials")
                .await
                .unwrap(),
        );
        if d["scope"] == "read" {
            Ok(())
        } else {
            Err(format!("scope={}", d["scope"]))
        }
    })
    .await;
    let d = data(
        &get_secret(&client, &ns.name, "agent-credentials")
            .await
            .unwrap(),
    );
    assert_eq!(d["client_secret"], recreated["client_secret"]);
    wait_event(&client, &ns.name, "agent", "SecretUpdated").await;

    // client_secret edited: replaced by a new one.
    let edit = json!({"stringData": {"client_secret": "m2msec_chosen-by-hand"}});
    secrets
        .patch(
            "agent-credentials",
            &PatchParams::default(),
            &Patch::Merge(&edit),
        )
        .await
        .expect("edit secret");
    let fresh = wait_for(
        "client_secret replaced",
        Duration::from_secs(20),
        || async {
            let d = data(
                &get_secret(&client, &ns.name, "agent-credentials")
                    .await
                    .unwrap(),
            );
            let s = d["client_secret"].clone();
            if s != "m2msec_chosen-by-hand" && s != recreated["client_secret"] {
                Ok(s)
            } else {
                Err(s)
            }
        },
    )
    .await;
    let rec = record(&client, &uid(&app)).await.unwrap();
    assert!(verify(&fresh, rec.current.as_ref().unwrap()));
    assert!(!verify(
        "m2msec_chosen-by-hand",
        rec.current.as_ref().unwrap()
    ));
    assert_eq!(rec.revision, 1, "repairs are not rotations");
    ns.delete().await;
}

/// Everything an unchanged world must keep: secrets, ids and resourceVersions.
async fn snapshot(
    client: &kube::Client,
    ns: &str,
    names: &[&str],
) -> Vec<(String, String, String, String, String)> {
    let mut out = Vec::new();
    for name in names {
        let app = get_app(client, ns, name).await;
        let secret = get_secret(client, ns, &format!("{name}-credentials"))
            .await
            .expect("Secret");
        let rec = record_secret(client, &uid(&app)).await.expect("record");
        out.push((
            data(&secret)["client_secret"].clone(),
            data(&secret)["client_id"].clone(),
            secret.resource_version().unwrap_or_default(),
            rec.resource_version().unwrap_or_default(),
            app.resource_version().unwrap_or_default(),
        ));
    }
    out
}

async fn metric(op: &Operator, series: &str) -> f64 {
    op.metric(series).await
}

const ARGON2_VERIFICATIONS: &str = "m2m_controller_argon2_duration_seconds_count{op=\"verify\"}";
const APP_RECONCILES: &str = "m2m_reconciles_total{kind=\"M2MApp\",result=\"success\"}";

/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test]
async fn restarts_change_no_secret_no_client_id_and_write_nothing() {
    let client = common::client().await;
    let ns = TestNamespace::new(&client, "m2m-restart").await;
    let org = org_name("restart");
    apply_org(&client, &org, json!({"namespaces": [ns.name]})).await;
    let options = Options::default();
    let mut op = Operator::start_with(&client, options.clone()).await;
    let names = ["one", "two", "three"];
    for name in names {
        let spec = if name == "two" {
            json!({"audiences": ["api"]})
        } else {
            json!({"organizationRef": {"name": org}, "audiences": ["api"]})
        };
        apply_app(&client, &ns.name, name, spec).await;
    }
    for name in names {
        wait_app_reason(&client, &ns.name, name, "True", "CredentialsIssued").await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = snapshot(&client, &ns.name, &names).await;
    for _ in 0..5 {
        op.terminate();
        op = Operator::start_with(&client, options.clone()).await;
        // Let it acquire the lease and reconcile everything once.
        wait_for(
            "the restarted operator to reconcile",
            Duration::from_secs(20),
            || async {
                if op.log_text().contains("acquired the lease") {
                    Ok(())
                } else {
                    Err("not leader yet".to_owned())
                }
            },
        )
        .await;
        wait_for(
            "the restarted operator to reconcile every app",
            Duration::from_secs(20),
            || async {
                match metric(&op, APP_RECONCILES).await {
                    n if n >= names.len() as f64 => Ok(()),
                    n => Err(format!("{n} reconciles")),
                }
            },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            metric(&op, ARGON2_VERIFICATIONS).await,
            0.0,
            "a restarted controller does not argon2-verify Secrets that did not change \
             (status.verifiedSecret names the version verified last)"
        );
    }
    let after = snapshot(&client, &ns.name, &names).await;
    assert_eq!(
        before, after,
        "(secret, client_id, Secret rv, record rv, app rv) changed across restarts"
    );

    // A Secret edited while no operator runs is still found out: its version changed.
    op.terminate();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    secrets
        .patch(
            "one-credentials",
            &PatchParams::default(),
            &Patch::Merge(&json!({"stringData": {"client_secret": "m2msec_edited-by-hand"}})),
        )
        .await
        .expect("edit client_secret");
    let op = Operator::start_with(&client, options.clone()).await;
    wait_event(&client, &ns.name, "one", "SecretRepaired").await;
    let repaired = wait_for("a new secret", Duration::from_secs(20), || async {
        let secret = get_secret(&client, &ns.name, "one-credentials")
            .await
            .ok_or("no Secret")?;
        let d = data(&secret);
        if d["client_secret"] == "m2msec_edited-by-hand" || d["client_secret"] == before[0].0 {
            Err("not repaired yet".to_owned())
        } else {
            Ok(d)
        }
    })
    .await;
    let app = get_app(&client, &ns.name, "one").await;
    let rec = record(&client, &uid(&app)).await.expect("record");
    assert!(verify(
        &repaired["client_secret"],
        rec.current.as_ref().unwrap()
    ));
    wait_for("every app reconciled", Duration::from_secs(20), || async {
        match metric(&op, APP_RECONCILES).await {
            n if n >= names.len() as f64 => Ok(()),
            n => Err(format!("{n} reconciles")),
        }
    })
    .await;
    assert_eq!(
        metric(&op, ARGON2_VERIFICATIONS).await,
        1.0,
        "only the edited Secret was verified"
    );
    delete_org(&client, &org).await;
    ns.delete().await;
}
