//! What changes while a watch is down is seen after it lists again: a tenant's credential
//! Secret or a client record deleted then (no Delete event ever tells of it) is issued or
//! recovered once the operator relists, not at the next `--resync` (1 h).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, api::DeleteParams};
use m2m_operator::credentials::record::record_name;
use serde_json::json;

use crate::{
    api_proxy::ApiProxy,
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    operator::{OPERATOR_NAMESPACE, Operator, Options},
};

/// The watch of the tenant Secrets (all namespaces).
const TENANT_SECRETS: &str = "/api/v1/secrets";

/// An operator whose API requests go through `proxy`, with one issued app in `ns`, once the
/// operator is done with it (its status and record writes wake it again for a moment), so
/// that only a watch event could tell it of what the test deletes.
async fn issued_and_quiet(client: &kube::Client, proxy: &ApiProxy, ns: &str) -> Operator {
    let mut options = Options::default();
    options
        .extra_env
        .push(("KUBECONFIG".into(), proxy.kubeconfig.display().to_string()));
    let op = Operator::start_with(client, options).await;
    apply_app(client, ns, "agent", json!({"audiences": ["api"]})).await;
    wait_app_reason(client, ns, "agent", "True", "CredentialsIssued").await;
    wait_for(
        "the operator quiet for 3 s",
        Duration::from_secs(60),
        || async {
            let before = proxy.forwarded().len();
            tokio::time::sleep(Duration::from_secs(3)).await;
            let after = proxy.forwarded().len();
            (after == before)
                .then_some(())
                .ok_or(format!("{} requests in 3 s", after - before))
        },
    )
    .await;
    op
}

/// The lists (not watches) of `path` the operator made so far.
fn lists(proxy: &ApiProxy, path: &str) -> usize {
    proxy
        .forwarded()
        .iter()
        .filter(|f| f.path.starts_with(&format!("{path}?")) && !f.path.contains("watch="))
        .count()
}

#[tokio::test]
async fn a_secret_deleted_while_the_watch_was_down_is_issued_again_after_the_relist() {
    let client = common::client().await;
    let proxy = ApiProxy::start(client.clone()).await;
    let ns = TestNamespace::new(&client, "m2m-relist").await;
    let _op = issued_and_quiet(&client, &proxy, &ns.name).await;
    let original = get_secret(&client, &ns.name, "agent-credentials")
        .await
        .expect("issued");

    proxy.hold_watches(TENANT_SECRETS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    secrets
        .delete("agent-credentials", &DeleteParams::default())
        .await
        .expect("delete the Secret");
    // The operator's watch is down: nothing tells it (the hold works).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        get_secret(&client, &ns.name, "agent-credentials")
            .await
            .is_none(),
        "recreated although the operator could not see the deletion"
    );

    let listed_before = lists(&proxy, TENANT_SECRETS);
    proxy.release_watches_as_gone();
    let recreated = wait_for(
        "the Secret issued again after the relist",
        Duration::from_secs(30),
        || async {
            get_secret(&client, &ns.name, "agent-credentials")
                .await
                .ok_or_else(|| "missing".to_owned())
        },
    )
    .await;
    assert_ne!(recreated.metadata.uid, original.metadata.uid);
    let data = |s: &Secret| s.data.clone().unwrap_or_default();
    assert_eq!(
        data(&recreated).get("client_id"),
        data(&original).get("client_id"),
        "the client id is stable"
    );
    assert!(
        lists(&proxy, TENANT_SECRETS) > listed_before,
        "the operator listed the tenant Secrets again"
    );
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    ns.delete().await;
}

#[tokio::test]
async fn a_record_deleted_while_the_watch_was_down_is_recovered_after_the_relist() {
    let client = common::client().await;
    let proxy = ApiProxy::start(client.clone()).await;
    let ns = TestNamespace::new(&client, "m2m-relist-rec").await;
    let _op = issued_and_quiet(&client, &proxy, &ns.name).await;
    let app = get_app(&client, &ns.name, "agent").await;
    let records_path = format!("/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets");

    // Holds the signing keys' watch too (same path); neither is needed meanwhile.
    proxy.hold_watches(&records_path);
    let records: Api<Secret> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    records
        .delete(&record_name(&uid(&app)), &DeleteParams::default())
        .await
        .expect("delete the record");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        record(&client, &uid(&app)).await.is_none(),
        "recovered although the operator could not see the deletion"
    );

    let listed_before = lists(&proxy, &records_path);
    proxy.release_watches_as_gone();
    let recovered = wait_for(
        "the record recovered after the relist",
        Duration::from_secs(30),
        || async {
            record(&client, &uid(&app))
                .await
                .ok_or_else(|| "missing".to_owned())
        },
    )
    .await;
    assert!(recovered.current.is_some(), "it holds the current hash");
    assert!(lists(&proxy, &records_path) > listed_before);
    ns.delete().await;
}
