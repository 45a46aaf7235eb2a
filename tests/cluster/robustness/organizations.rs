//! Organizations: a recreated one does not inherit the old one's credentials; codes that differ
//! only in case are duplicates.

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    http,
    operator::Operator,
};
use kube::{Api, api::DeleteParams};
use serde_json::json;
use std::time::Duration;

/// An Organization deleted and created again under the same name (perhaps for another tenant,
/// with another code) does not re-bind its old apps' credentials: the old secret gets no token,
/// and the app gets a new one.
#[tokio::test]
async fn a_recreated_organization_does_not_inherit_the_old_ones_credentials() {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-reorg").await;
    let org = org_name("reorg");
    let (first_code, second_code) = (
        format!("org_{}", common::suffix()),
        format!("org_{}", common::suffix()),
    );
    apply_org(
        &client,
        &org,
        json!({"code": first_code, "namespaces": [ns.name]}),
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
    let (id, old) = credentials(&client, &ns.name, "agent").await;
    assert_eq!(http::token(&op.url(), &id, &old, &[]).await.0, 200);

    let orgs: Api<m2m_operator::api::Organization> = Api::all(client.clone());
    orgs.delete(&org, &DeleteParams::default()).await.unwrap();
    wait_for("the Organization gone", Duration::from_secs(15), || async {
        match orgs.get_opt(&org).await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    wait_app_reason(&client, &ns.name, "agent", "False", "OrganizationNotFound").await;
    apply_org(
        &client,
        &org,
        json!({"code": second_code, "namespaces": [ns.name]}),
    )
    .await;
    let new = wait_for("a new secret", Duration::from_secs(20), || async {
        let (_, s) = credentials(&client, &ns.name, "agent").await;
        if s != old {
            Ok(s)
        } else {
            Err("the old secret".into())
        }
    })
    .await;
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let (status, body) = http::token(&op.url(), &id, &old, &[]).await;
    assert_eq!(status, 401, "the old secret is refused: {body}");
    let (status, body) = http::token(&op.url(), &id, &new, &[]).await;
    assert_eq!(status, 200, "{body}");
    let claims = http::verify(
        &op.url(),
        crate::operator::ISSUER,
        body["access_token"].as_str().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(claims["org_code"], second_code.as_str());
    wait_event(&client, &ns.name, "agent", "SecretRepaired").await;
    delete_org(&client, &org).await;
    ns.delete().await;
}

/// `Acme` and `acme` are one tenant to an API that ignores case: the newer is a duplicate.
#[tokio::test]
async fn codes_that_differ_only_in_case_are_duplicates() {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-case").await;
    let code = format!("Case{}", common::suffix());
    let (older, newer) = (org_name("case-old"), org_name("case-new"));
    apply_org(
        &client,
        &older,
        json!({"code": code, "namespaces": [ns.name]}),
    )
    .await;
    wait_org_reason(&client, &older, "True", "Active").await;
    apply_org(
        &client,
        &newer,
        json!({"code": code.to_ascii_uppercase(), "namespaces": [ns.name]}),
    )
    .await;
    wait_org_reason(&client, &newer, "False", "DuplicateCode").await;
    apply_app(
        &client,
        &ns.name,
        "shadow",
        json!({"organizationRef": {"name": newer}, "audiences": ["api"]}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "shadow", "False", "OrganizationNotReady").await;
    assert!(
        get_secret(&client, &ns.name, "shadow-credentials")
            .await
            .is_none()
    );
    drop(op);
    delete_org(&client, &older).await;
    delete_org(&client, &newer).await;
    ns.delete().await;
}
