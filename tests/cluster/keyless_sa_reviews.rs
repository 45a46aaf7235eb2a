//! What a ServiceAccount token costs the API server: a tenant that may create ServiceAccounts
//! and TokenRequests in its namespace mints as many valid tokens (for the operator's audience)
//! as it likes. One that no app accepts is refused after a signature check, with no TokenReview
//! and nothing remembered; a token an app accepts is reviewed once, then remembered.

use serde_json::json;

use crate::{
    api_proxy::ApiProxy,
    common::{self, TestNamespace},
    fixtures::*,
    keyless_sa::{exchange, mint, service_account},
    operator::{ISSUER, Operator, Options},
};

const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

fn reviews(proxy: &ApiProxy) -> usize {
    proxy
        .forwarded()
        .iter()
        .filter(|f| f.path.starts_with(TOKEN_REVIEWS))
        .count()
}

#[tokio::test]
async fn tokens_of_a_service_account_no_app_accepts_cost_no_token_review() {
    let client = common::client().await;
    let proxy = ApiProxy::start(client.clone()).await;
    let mut options = Options::default();
    options
        .extra_env
        .push(("KUBECONFIG".into(), proxy.kubeconfig.display().to_string()));
    let op = Operator::start_with(&client, options).await;
    let ns = TestNamespace::new(&client, "m2m-sa-reviews").await;
    let org = org_name("reviews");
    apply_org(&client, &org, json!({"namespaces": [ns.name]})).await;
    service_account(&client, &ns.name, "agent").await;
    service_account(&client, &ns.name, "stranger").await;
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({"organizationRef": {"name": org}, "audiences": ["api"],
               "clientAuthentication": {"methods": ["ServiceAccountToken"],
                                        "serviceAccountNames": ["agent"]}}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let client_id = get_app(&client, &ns.name, "agent")
        .await
        .status
        .and_then(|s| s.client_id)
        .expect("client id");

    for _ in 0..5 {
        let token = mint(&client, &ns.name, "stranger", ISSUER, None).await;
        let (code, body) = exchange(&op, &token, None).await;
        assert_eq!(code, 401, "{body}");
        // Named, too: the app exists but does not list this ServiceAccount.
        let (code, body) = exchange(&op, &token, Some(&client_id)).await;
        assert_eq!(code, 401, "{body}");
    }
    assert_eq!(
        reviews(&proxy),
        0,
        "no TokenReview for tokens no app accepts"
    );

    let token = mint(&client, &ns.name, "agent", ISSUER, None).await;
    for _ in 0..3 {
        let (code, body) = exchange(&op, &token, None).await;
        assert_eq!(code, 200, "{body}");
    }
    assert_eq!(reviews(&proxy), 1, "one review, then remembered");
    drop(op);
    delete_org(&client, &org).await;
    ns.delete().await;
}
