//! The controller against the real API server, with the real operator binary running.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use m2m_operator::{api::M2MApp, credentials::hash::verify};
use serde_json::json;

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    http,
    operator::{Operator, Options},
};

const CONTRACT_KEYS: [&str; 7] = [
    "audience",
    "client_id",
    "client_secret",
    "issuer",
    "org_code",
    "scope",
    "token_url",
];

#[tokio::test]
async fn an_org_app_gets_working_credentials_and_status() {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-issue").await;
    let org = org_name("acme");
    let code = format!("org_{}", common::suffix());
    apply_org(&client, &org, json!({"code": code, "namespaces": [ns.name], "allowedScopes": ["read:users", "write:flags"]})).await;
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({
            "organizationRef": {"name": org}, "scopes": ["write:flags", "read:users"],
            "audiences": ["https://api.example.com", "billing"],
        }),
    )
    .await;
    let app = wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let status = app.status.clone().unwrap();

    let secret = get_secret(&client, &ns.name, "agent-credentials")
        .await
        .expect("Secret created");
    let d = data(&secret);
    assert_eq!(
        d.keys().map(String::as_str).collect::<Vec<_>>(),
        CONTRACT_KEYS
    );
    assert_eq!(d["client_id"], status.client_id.clone().unwrap());
    assert!(d["client_secret"].starts_with("m2msec_") && d["client_secret"].len() >= 7 + 43);
    assert_eq!(d["org_code"], code);
    assert_eq!(d["scope"], "read:users write:flags");
    assert_eq!(d["audience"], "https://api.example.com billing");
    assert_eq!(d["issuer"], crate::operator::ISSUER);
    assert_eq!(
        d["token_url"],
        format!("{}/oauth2/token", crate::operator::ISSUER)
    );
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        secret.labels()["app.kubernetes.io/managed-by"],
        "m2m-operator"
    );
    assert_eq!(secret.labels()["m2m.dev/app"], "agent");
    assert_eq!(secret.annotations()["m2m.dev/revision"], "1");
    let owner = &secret.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("M2MApp", uid(&app).as_str(), Some(true))
    );

    assert_eq!(status.secret_name.as_deref(), Some("agent-credentials"));
    assert_eq!(status.organization_code.as_deref(), Some(code.as_str()));
    assert_eq!(status.scopes, ["read:users", "write:flags"]);
    assert_eq!(status.rotation.as_ref().map(|r| r.revision), Some(1));
    assert_eq!(status.observed_generation, app.metadata.generation);

    let rec = record(&client, &uid(&app)).await.expect("client record");
    assert!(
        verify(&d["client_secret"], rec.current.as_ref().unwrap()),
        "the stored hash verifies the Secret's secret"
    );
    assert!(
        rec.current
            .as_ref()
            .unwrap()
            .as_str()
            .starts_with("$argon2id$")
    );
    let record_text = serde_json::to_string(&record_secret(&client, &uid(&app)).await).unwrap();
    assert!(
        !record_text.contains(&d["client_secret"]),
        "the record holds no plaintext"
    );
    wait_event(&client, &ns.name, "agent", "CredentialsIssued").await;
    let org_obj = wait_org_reason(&client, &org, "True", "Active").await;
    assert_eq!(org_obj.status.as_ref().map(|s| s.apps), Some(1));
    assert_eq!(
        org_obj.status.as_ref().and_then(|s| s.code.clone()),
        Some(code.clone())
    );

    let metrics = op.metrics().await;
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{metrics}"))
    };
    assert!(value("m2m_apps{reason=\"CredentialsIssued\"}") >= 1.0);
    assert!(value("m2m_reconciles_total{kind=\"M2MApp\",result=\"success\"}") >= 1.0);
    assert!(value("m2m_credentials_total{action=\"issued\"}") >= 1.0);
    assert!(metrics.contains("m2m_reconcile_duration_seconds_bucket"));

    delete_org(&client, &org).await;
    ns.delete().await;
}

#[tokio::test]
async fn a_namespace_not_allowed_gets_no_secret_until_the_org_allows_it() {
    let client = common::client().await;
    let _op = Operator::start(&client).await;
    let allowed = TestNamespace::new(&client, "m2m-ns-a").await;
    let other = TestNamespace::new(&client, "m2m-ns-b").await;
    let org = org_name("nsorg");
    apply_org(&client, &org, json!({"namespaces": [allowed.name]})).await;
    apply_app(
        &client,
        &other.name,
        "agent",
        json!({"organizationRef": {"name": org}, "audiences": ["api"]}),
    )
    .await;
    let app = wait_app_reason(
        &client,
        &other.name,
        "agent",
        "False",
        "NamespaceNotAllowed",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        get_secret(&client, &other.name, "agent-credentials")
            .await
            .is_none(),
        "no Secret for a refused app"
    );
    assert!(
        record(&client, &uid(&app)).await.is_none(),
        "no hashes for a refused app"
    );
    wait_event(&client, &other.name, "agent", "NamespaceNotAllowed").await;

    apply_org(
        &client,
        &org,
        json!({"namespaces": [allowed.name, other.name]}),
    )
    .await;
    wait_app_reason(&client, &other.name, "agent", "True", "CredentialsIssued").await;
    assert!(
        get_secret(&client, &other.name, "agent-credentials")
            .await
            .is_some()
    );

    delete_org(&client, &org).await;
    allowed.delete().await;
    other.delete().await;
}

#[tokio::test]
async fn namespace_selectors_bind_by_label() {
    let client = common::client().await;
    let _op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-sel").await;
    let org = org_name("selorg");
    let tenant = common::suffix();
    apply_org(
        &client,
        &org,
        json!({"namespaceSelector": {"matchLabels": {"m2m.dev/tenant": tenant}}}),
    )
    .await;
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({"organizationRef": {"name": org}, "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "agent", "False", "NamespaceNotAllowed").await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let label = json!({"metadata": {"labels": {"m2m.dev/tenant": tenant}}});
    namespaces
        .patch(&ns.name, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label namespace");
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    delete_org(&client, &org).await;
    ns.delete().await;
}

#[tokio::test]
async fn refusals_scopes_missing_org_and_foreign_secret() {
    let client = common::client().await;
    let _op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-refuse").await;
    let org = org_name("capped");
    apply_org(
        &client,
        &org,
        json!({"namespaces": [ns.name], "allowedScopes": ["read"]}),
    )
    .await;

    apply_app(&client, &ns.name, "greedy", json!({"organizationRef": {"name": org}, "scopes": ["read", "admin"], "audiences": ["api"]})).await;
    let greedy = wait_app_reason(&client, &ns.name, "greedy", "False", "ScopesNotAllowed").await;
    let message = &greedy.status.as_ref().unwrap().conditions[0].message;
    assert!(
        message.contains("admin") && !message.contains("read,"),
        "{message}"
    );

    apply_app(
        &client,
        &ns.name,
        "orphan",
        json!({"organizationRef": {"name": "no-such-org"}, "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "orphan", "False", "OrganizationNotFound").await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let foreign: Secret = serde_json::from_value(json!({
        "metadata": {"name": "taken-credentials", "labels": {"app.kubernetes.io/managed-by": "m2m-operator"}},
        "stringData": {"client_secret": "someone-elses"},
    })).unwrap();
    let foreign = secrets
        .create(&PostParams::default(), &foreign)
        .await
        .expect("create foreign Secret");
    apply_app(
        &client,
        &ns.name,
        "taken",
        json!({"organizationRef": {"name": org}, "scopes": ["read"], "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "taken", "False", "SecretConflict").await;
    wait_event(&client, &ns.name, "taken", "SecretConflict").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = secrets
        .get("taken-credentials")
        .await
        .expect("foreign Secret still there");
    assert_eq!(
        after.metadata.resource_version, foreign.metadata.resource_version,
        "foreign Secret untouched"
    );
    assert_eq!(after.data, foreign.data);

    delete_org(&client, &org).await;
    ns.delete().await;
}

#[tokio::test]
async fn a_global_app_works_in_any_namespace_without_org_code() {
    let client = common::client().await;
    let _op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-global").await;
    apply_app(&client, &ns.name, "global", json!({"scopes": ["admin"], "audiences": ["api"], "secretName": "global-creds",
        "secretTemplate": {"labels": {"team": "platform"}, "annotations": {"reloader.stakater.com/match": "true"}}})).await;
    let app = wait_app_reason(&client, &ns.name, "global", "True", "CredentialsIssued").await;
    let secret = get_secret(&client, &ns.name, "global-creds")
        .await
        .expect("Secret at spec.secretName");
    assert!(!data(&secret).contains_key("org_code"));
    assert_eq!(data(&secret)["scope"], "admin");
    assert_eq!(secret.labels()["team"], "platform");
    assert_eq!(secret.annotations()["reloader.stakater.com/match"], "true");
    assert_eq!(app.status.unwrap().organization_code, None);

    // Spec changes flow into the Secret without changing the secret.
    let before = data(&secret)["client_secret"].clone();
    apply_app(&client, &ns.name, "global", json!({"scopes": ["admin", "read"], "audiences": ["api", "other"], "secretName": "global-creds"})).await;
    let updated = wait_for(
        "scope and audience updated in the Secret",
        Duration::from_secs(20),
        || async {
            let s = get_secret(&client, &ns.name, "global-creds")
                .await
                .ok_or("missing")?;
            let d = data(&s);
            if d["scope"] == "admin read" && d["audience"] == "api other" {
                Ok(s)
            } else {
                Err(format!("{d:?}"))
            }
        },
    )
    .await;
    assert_eq!(data(&updated)["client_secret"], before);
    ns.delete().await;
}

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

#[tokio::test]
async fn deleting_an_app_removes_its_secret_and_hashes() {
    let client = common::client().await;
    let _op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-delete").await;
    apply_app(&client, &ns.name, "doomed", json!({"audiences": ["api"]})).await;
    let app = wait_app_reason(&client, &ns.name, "doomed", "True", "CredentialsIssued").await;
    let apps: Api<M2MApp> = Api::namespaced(client.clone(), &ns.name);
    apps.delete("doomed", &DeleteParams::default())
        .await
        .expect("delete app");
    wait_for(
        "Secret garbage-collected and record removed",
        Duration::from_secs(30),
        || async {
            let secret = get_secret(&client, &ns.name, "doomed-credentials").await;
            let rec = record_secret(&client, &uid(&app)).await;
            if secret.is_none() && rec.is_none() {
                Ok(())
            } else {
                Err(format!(
                    "secret={} record={}",
                    secret.is_some(),
                    rec.is_some()
                ))
            }
        },
    )
    .await;
    ns.delete().await;
}

#[tokio::test]
async fn deleting_an_org_refuses_its_apps_but_keeps_their_secrets() {
    let client = common::client().await;
    let _op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-orgdel").await;
    let org = org_name("gone");
    apply_org(&client, &org, json!({"namespaces": [ns.name]})).await;
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({"organizationRef": {"name": org}, "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    delete_org(&client, &org).await;
    wait_app_reason(&client, &ns.name, "agent", "False", "OrganizationNotFound").await;
    assert!(
        get_secret(&client, &ns.name, "agent-credentials")
            .await
            .is_some(),
        "tenant Secret kept"
    );
    ns.delete().await;
}

#[tokio::test]
async fn duplicate_codes_suspension_and_disable() {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-dup").await;
    let code = format!("dup_{}", common::suffix());
    let older = org_name("older");
    let newer = org_name("newer");
    apply_org(
        &client,
        &older,
        json!({"code": code, "namespaces": [ns.name]}),
    )
    .await;
    wait_org_reason(&client, &older, "True", "Active").await;
    // A token for an app of the older one: the endpoint now knows which Organizations hold
    // the code, and must learn of every change to that from the watch.
    apply_app(
        &client,
        &ns.name,
        "original",
        json!({"organizationRef": {"name": older}, "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "original", "True", "CredentialsIssued").await;
    let (old_id, old_secret) = credentials(&client, &ns.name, "original").await;
    assert_eq!(
        http::token(&op.url(), &old_id, &old_secret, &[]).await.0,
        200
    );
    // creationTimestamp has one-second resolution; make "older" unambiguously older.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apply_org(
        &client,
        &newer,
        json!({"code": code, "namespaces": [ns.name]}),
    )
    .await;
    wait_org_reason(&client, &newer, "False", "DuplicateCode").await;
    apply_app(
        &client,
        &ns.name,
        "copycat",
        json!({"organizationRef": {"name": newer}, "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(
        &client,
        &ns.name,
        "copycat",
        "False",
        "OrganizationNotReady",
    )
    .await;
    // When the older one goes away, the code is free, for the controller and the endpoint.
    delete_org(&client, &older).await;
    wait_org_reason(&client, &newer, "True", "Active").await;
    wait_app_reason(&client, &ns.name, "copycat", "True", "CredentialsIssued").await;
    let (id, secret) = credentials(&client, &ns.name, "copycat").await;
    let (status, body) = http::token(&op.url(), &id, &secret, &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http::token(&op.url(), &old_id, &old_secret, &[]).await;
    assert!(
        status == 400 || status == 401,
        "the deleted Organization's app gets nothing: {status} {body}"
    );

    apply_org(
        &client,
        &newer,
        json!({"code": code, "namespaces": [ns.name], "suspended": true}),
    )
    .await;
    wait_app_reason(
        &client,
        &ns.name,
        "copycat",
        "False",
        "OrganizationSuspended",
    )
    .await;
    wait_org_reason(&client, &newer, "False", "Suspended").await;
    apply_org(
        &client,
        &newer,
        json!({"code": code, "namespaces": [ns.name]}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "copycat", "True", "CredentialsIssued").await;
    apply_app(
        &client,
        &ns.name,
        "copycat",
        json!({"organizationRef": {"name": newer}, "audiences": ["api"], "disabled": true}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "copycat", "False", "Disabled").await;
    assert!(
        get_secret(&client, &ns.name, "copycat-credentials")
            .await
            .is_some(),
        "credentials kept"
    );

    delete_org(&client, &newer).await;
    ns.delete().await;
}
