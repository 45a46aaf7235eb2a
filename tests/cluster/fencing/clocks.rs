//! Time: a leader frozen past its deadline sends no write; a standby never takes a Lease that
//! keeps being renewed, whatever its own clock says.

use crate::{
    api_proxy::{ApiProxy, Forwarded},
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    operator::{OPERATOR_NAMESPACE, Operator},
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;
use std::time::{Duration, Instant};

use super::*;

fn signal(op: &Operator, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &op.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal}");
}

/// The leader is frozen (SIGSTOP: its clock view, its timers and its connections with it) for
/// longer than its lease, just after new apps gave its controllers work. When it wakes up
/// (SIGCONT), its tasks resume with stale state; none of them may write, because the fence is
/// checked against the clock right before each request, not by the elector's task.
#[tokio::test]
async fn a_frozen_leader_that_wakes_up_past_its_deadline_sends_no_write() {
    let client = common::client().await;
    let ns = TestNamespace::new(&client, "m2m-frozen").await;
    let org = org_name("frozen");
    apply_org(&client, &org, json!({"namespaces": [ns.name]})).await;
    let lease_name = format!("m2m-lease-{}", common::suffix());
    let proxy = ApiProxy::start(client.clone()).await;
    let mut first = options("frozen", &lease_name);
    first
        .extra_env
        .push(("KUBECONFIG".into(), proxy.kubeconfig.display().to_string()));
    let frozen = Operator::start_with(&client, first).await;
    wait_holder(
        &client,
        &lease_name,
        &frozen.options.identity,
        Duration::from_secs(20),
    )
    .await;
    let successor = Operator::start_with(&client, options("successor", &lease_name)).await;
    let before = names("before", 2);
    apply_apps(&client, &ns.name, &org, &before).await;
    for app in &before {
        wait_app_reason(&client, &ns.name, app, "True", "CredentialsIssued").await;
    }

    let during = names("during", 4);
    apply_apps(&client, &ns.name, &org, &during).await;
    rotate(&client, &ns.name, &before[0], "frozen").await;
    signal(&frozen, "-STOP");
    wait_holder(
        &client,
        &lease_name,
        &successor.options.identity,
        Duration::from_secs(30),
    )
    .await;
    let taken_over = Instant::now();
    for app in &during {
        wait_app_reason(&client, &ns.name, app, "True", "CredentialsIssued").await;
    }
    signal(&frozen, "-CONT");
    tokio::time::sleep(Duration::from_secs(4)).await;

    let late_writes: Vec<String> = proxy
        .forwarded()
        .iter()
        .filter(|r| r.at >= taken_over && r.is_write())
        .map(Forwarded::to_string)
        .collect();
    let all: Vec<String> = [before, during].concat();
    let mut problems = apps_without_token(&client, &successor, &ns.name, &all).await;
    problems.extend(apps_without_token(&client, &frozen, &ns.name, &all).await);
    assert!(
        late_writes.is_empty() && problems.is_empty(),
        "writes after the takeover:\n  {}\nother problems: {problems:?}\nlog:\n{}",
        late_writes.join("\n  "),
        frozen.log_tail()
    );
    drop((frozen, successor));
    delete_org(&client, &org).await;
    ns.delete().await;
}

/// A holder whose wall clock is an hour behind: every renewTime it writes looks an hour old to
/// everyone else. As long as it keeps renewing, a standby must not take the lease; once it
/// stops, the standby takes it after about one lease duration.
#[tokio::test]
async fn a_standby_never_takes_a_lease_that_keeps_being_renewed_whatever_its_clock_says() {
    use k8s_openapi::{
        api::coordination::v1::LeaseSpec,
        apimachinery::pkg::apis::meta::v1::MicroTime,
        jiff::{SignedDuration, Timestamp},
    };
    use kube::api::PostParams;

    let client = common::client().await;
    common::install_crds(&client).await;
    crate::operator::ensure_operator_namespace(&client).await;
    common::install_operator_rbac(&client).await;
    let lease_name = format!("m2m-lease-{}", common::suffix());
    let api: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let an_hour_ago = || MicroTime(Timestamp::now() - SignedDuration::from_hours(1));
    let mut skewed = Lease::default();
    skewed.metadata.name = Some(lease_name.clone());
    skewed.spec = Some(LeaseSpec {
        holder_identity: Some("skewed-holder".into()),
        lease_duration_seconds: Some(6),
        acquire_time: Some(an_hour_ago()),
        renew_time: Some(an_hour_ago()),
        ..LeaseSpec::default()
    });
    api.create(&PostParams::default(), &skewed)
        .await
        .expect("create the Lease");

    let standby = Operator::spawn(options("standby", &lease_name));
    wait_for("the standby's caches", Duration::from_secs(60), || async {
        if standby.log_text().contains("caches synced") {
            Ok(())
        } else {
            Err(standby.log_tail())
        }
    })
    .await;
    // Two lease durations of renewals, each with a renewTime an hour in the past.
    let renewing_until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < renewing_until {
        let mut current = api.get(&lease_name).await.expect("get the Lease");
        let holder = current
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone());
        assert_eq!(
            holder.as_deref(),
            Some("skewed-holder"),
            "the standby took a lease that was being renewed; log:\n{}",
            standby.log_tail()
        );
        if let Some(spec) = current.spec.as_mut() {
            spec.renew_time = Some(an_hour_ago());
        }
        api.replace(&lease_name, &PostParams::default(), &current)
            .await
            .expect("renew the Lease");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The holder stops renewing: the standby takes over.
    wait_holder(
        &client,
        &lease_name,
        &standby.options.identity,
        Duration::from_secs(20),
    )
    .await;
    drop(standby);
}
