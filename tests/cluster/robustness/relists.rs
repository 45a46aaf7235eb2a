//! What changes while a watch is down is seen after it lists again: a tenant's credential
//! Secret deleted then (no Delete event ever tells of it) is issued again once the operator
//! relists, not at the next `--resync` (1 h).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, api::DeleteParams};
use serde_json::json;

use crate::{
    api_proxy::ApiProxy,
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    operator::{Operator, Options},
};

/// The watch of the tenant Secrets (all namespaces).
const TENANT_SECRETS: &str = "/api/v1/secrets";

#[tokio::test]
async fn a_secret_deleted_while_the_watch_was_down_is_issued_again_after_the_relist() {
    let client = common::client().await;
    let proxy = ApiProxy::start(client.clone()).await;
    let mut options = Options::default();
    options
        .extra_env
        .push(("KUBECONFIG".into(), proxy.kubeconfig.display().to_string()));
    let _op = Operator::start_with(&client, options).await;
    let ns = TestNamespace::new(&client, "m2m-relist").await;
    apply_app(&client, &ns.name, "agent", json!({"audiences": ["api"]})).await;
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let original = get_secret(&client, &ns.name, "agent-credentials")
        .await
        .expect("issued");

    // Until the operator is done with the app (its status and record writes wake it again
    // for a moment), so that only a watch event could tell it of the deletion below.
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

    let lists = || {
        proxy
            .forwarded()
            .iter()
            .filter(|f| f.path.starts_with(TENANT_SECRETS) && !f.path.contains("watch="))
            .count()
    };
    let listed_before = lists();
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
        lists() > listed_before,
        "the operator listed the tenant Secrets again"
    );
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    ns.delete().await;
}
