//! Leader fencing: a leader that cannot renew its Lease stops writing before a standby can take
//! it over, and a leader whose controllers died gives the Lease up and reports unhealthy.

mod clocks;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use m2m_operator::api::M2MApp;
use serde_json::json;

use crate::{
    api_proxy::{ApiProxy, Forwarded},
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    http,
    operator::{OPERATOR_NAMESPACE, Operator, Options},
};

const LEASE_DURATION: &str = "6s";

fn options(role: &str, lease: &str) -> Options {
    Options {
        lease_name: lease.to_owned(),
        identity: format!("{role}-{}", common::suffix()),
        lease_duration: LEASE_DURATION,
        extra_env: Vec::new(),
        ..Options::default()
    }
}

async fn lease(client: &kube::Client, name: &str) -> Option<Lease> {
    let api: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    api.get_opt(name).await.ok().flatten()
}

async fn holder(client: &kube::Client, name: &str) -> Option<String> {
    lease(client, name)
        .await?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

async fn wait_holder(client: &kube::Client, name: &str, identity: &str, within: Duration) {
    wait_for(&format!("{identity} to hold the lease"), within, || async {
        match holder(client, name).await {
            Some(h) if h == identity => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// The field manager that last wrote the Lease's holder.
async fn holder_writer(client: &kube::Client, name: &str) -> Option<String> {
    lease(client, name)
        .await?
        .metadata
        .managed_fields?
        .into_iter()
        .find(|f| {
            f.fields_v1
                .as_ref()
                .and_then(|v| v.0.get("f:spec"))
                .and_then(|spec| spec.get("f:holderIdentity"))
                .is_some()
        })?
        .manager
}

async fn apply_apps(client: &kube::Client, ns: &str, org: &str, names: &[String]) {
    for name in names {
        apply_app(
            client,
            ns,
            name,
            json!({"organizationRef": {"name": org}, "audiences": ["api"]}),
        )
        .await;
    }
}

async fn rotate(client: &kube::Client, ns: &str, name: &str, value: &str) {
    let api: Api<M2MApp> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"annotations": {"m2m.dev/rotate": value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
}

/// Every app's Secret holds a secret its record accepts: the operator issues a token for it.
/// Returns the apps for which it did not within 15 s, with what it answered.
async fn apps_without_token(
    client: &kube::Client,
    op: &Operator,
    ns: &str,
    apps: &[String],
) -> Vec<String> {
    let mut failed = Vec::new();
    for app in apps {
        let (id, secret) = credentials(client, ns, app).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match http::token(&op.url(), &id, &secret, &[]).await {
                (200, _) => break,
                (status, body) if Instant::now() > deadline => {
                    failed.push(format!(
                        "{app} from {}: {status} {body}",
                        op.options.identity
                    ));
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    failed
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// The deposed leader talks to the API server through a proxy that, from one moment on, lets
/// none of its Lease requests through (they hang, as in a partition) while everything else
/// still passes: the worst case, because its controllers could still write. After the standby
/// has taken the Lease, new apps and a rotation give both replicas work to do.
///
/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test]
async fn a_leader_that_cannot_renew_stops_writing_before_a_standby_takes_over() {
    let client = common::client().await;
    let ns = TestNamespace::new(&client, "m2m-fence").await;
    let org = org_name("fence");
    apply_org(&client, &org, json!({"namespaces": [ns.name]})).await;
    let lease_name = format!("m2m-lease-{}", common::suffix());
    let proxy = ApiProxy::start(client.clone()).await;

    let mut first = options("deposed", &lease_name);
    first
        .extra_env
        .push(("KUBECONFIG".into(), proxy.kubeconfig.display().to_string()));
    let deposed = Operator::start_with(&client, first).await;
    let deposed_id = deposed.options.identity.clone();
    wait_holder(&client, &lease_name, &deposed_id, Duration::from_secs(20)).await;
    let successor = Operator::start_with(&client, options("successor", &lease_name)).await;
    let successor_id = successor.options.identity.clone();
    let first_writer = holder_writer(&client, &lease_name).await;

    let before = names("before", 3);
    apply_apps(&client, &ns.name, &org, &before).await;
    for app in &before {
        wait_app_reason(&client, &ns.name, app, "True", "CredentialsIssued").await;
    }

    proxy.cut_leases();
    wait_holder(&client, &lease_name, &successor_id, Duration::from_secs(30)).await;
    let taken_over = Instant::now();
    let second_writer = holder_writer(&client, &lease_name).await;

    // Work for whoever runs controllers: new apps, a rotation.
    let during = names("during", 4);
    apply_apps(&client, &ns.name, &org, &during).await;
    rotate(&client, &ns.name, &before[0], "after-takeover").await;
    for app in &during {
        wait_app_reason(&client, &ns.name, app, "True", "CredentialsIssued").await;
    }
    wait_for("the rotation", Duration::from_secs(20), || async {
        let app = get_app(&client, &ns.name, &before[0]).await;
        match app.status.and_then(|s| s.rotation).map(|r| r.revision) {
            Some(2) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Give the deposed replica's controllers time to act on the same changes, then let its
    // Lease requests through again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.heal();
    let after = names("after", 2);
    apply_apps(&client, &ns.name, &org, &after).await;
    for app in &after {
        wait_app_reason(&client, &ns.name, app, "True", "CredentialsIssued").await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Collect every violation before failing, so one run shows them all.
    let mut problems = Vec::new();
    let late_writes: Vec<String> = proxy
        .forwarded()
        .iter()
        .filter(|r| r.at >= taken_over && r.is_write())
        .map(Forwarded::to_string)
        .collect();
    if !late_writes.is_empty() {
        problems.push(format!(
            "the deposed leader made {} writes after the successor took the lease:\n  {}",
            late_writes.len(),
            late_writes.join("\n  ")
        ));
    }
    let holder_now = holder(&client, &lease_name).await;
    if holder_now.as_deref() != Some(successor_id.as_str()) {
        problems.push(format!(
            "the successor should keep the lease once the deposed replica reaches it again: {holder_now:?}"
        ));
    }
    for (writer, id) in [
        (&first_writer, &deposed_id),
        (&second_writer, &successor_id),
    ] {
        let expected = format!("m2m-operator-{id}");
        if writer.as_deref() != Some(expected.as_str()) {
            problems.push(format!(
                "each replica writes the Lease under a field manager of its own: {writer:?}, expected {expected}"
            ));
        }
    }
    let all: Vec<String> = [before, during, after].concat();
    problems.extend(apps_without_token(&client, &successor, &ns.name, &all).await);
    problems.extend(apps_without_token(&client, &deposed, &ns.name, &all).await);
    if !deposed.log_text().contains("stopped controllers") {
        problems.push("the deposed replica does not say it stopped its controllers".into());
    }
    assert!(
        problems.is_empty(),
        "{}\ndeposed log:\n{}",
        problems.join("\n"),
        deposed.log_tail()
    );
    drop((deposed, successor));
    delete_org(&client, &org).await;
    ns.delete().await;
}

/// The controllers' task panics (a test-only hook of the `cluster-tests` build) on the leader:
/// it gives the Lease up at once, reports unhealthy so the kubelet restarts it, does not lead
/// again, and keeps serving tokens meanwhile; the standby takes over.
#[tokio::test]
async fn a_leader_whose_controllers_die_releases_the_lease_and_fails_healthz() {
    let client = common::client().await;
    let ns = TestNamespace::new(&client, "m2m-dead").await;
    let lease_name = format!("m2m-lease-{}", common::suffix());
    let mut first = options("dying", &lease_name);
    first
        .extra_env
        .push(("M2M_TEST_PANIC_CONTROLLERS_AFTER".into(), "3s".into()));
    let dying = Operator::start_with(&client, first).await;
    let dying_id = dying.options.identity.clone();
    wait_holder(&client, &lease_name, &dying_id, Duration::from_secs(20)).await;
    let standby = Operator::start_with(&client, options("standby", &lease_name)).await;
    apply_app(&client, &ns.name, "early", json!({"audiences": ["api"]})).await;
    wait_app_reason(&client, &ns.name, "early", "True", "CredentialsIssued").await;

    let body = wait_for("/healthz to fail", Duration::from_secs(15), || async {
        match dying.healthz().await {
            Some((500, body)) => Ok(body),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        body.contains("controllers"),
        "/healthz names what failed: {body:?}"
    );
    let log = dying.log_text();
    assert!(log.contains("released the lease"), "log:\n{log}");
    wait_holder(
        &client,
        &lease_name,
        &standby.options.identity,
        Duration::from_secs(10),
    )
    .await;

    apply_app(&client, &ns.name, "late", json!({"audiences": ["api"]})).await;
    wait_app_reason(&client, &ns.name, "late", "True", "CredentialsIssued").await;
    // Still serving tokens until the kubelet restarts it, and never leading again.
    assert_eq!(dying.readyz().await, Some(200));
    let failed = apps_without_token(
        &client,
        &dying,
        &ns.name,
        &["early".to_owned(), "late".to_owned()],
    )
    .await;
    assert!(failed.is_empty(), "{failed:?}");
    let log = dying.log_text();
    assert_eq!(
        log.matches("acquired the lease").count(),
        1,
        "led once; log:\n{log}"
    );
    drop((dying, standby));
    ns.delete().await;
}
