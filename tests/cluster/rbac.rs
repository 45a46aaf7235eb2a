//! The operator's identity has exactly the permissions the chart grants (every other cluster
//! test runs the operator as that identity): what it needs is allowed, the rest is refused.

use k8s_openapi::api::{
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
    core::v1::ConfigMap,
};
use kube::{Api, Client, api::PostParams};

use crate::{
    common,
    operator::{OPERATOR_GROUPS, OPERATOR_NAMESPACE, OPERATOR_USER},
};

/// Whether the operator's ServiceAccount may `verb` the resource, asked of the API server's
/// own authorizer.
async fn allowed(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_owned())),
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(OPERATOR_USER.into()),
            groups: Some(OPERATOR_GROUPS.split(',').map(String::from).collect()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: namespace.map(String::from),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    api.create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test]
async fn the_operator_identity_can_do_what_it_needs_and_nothing_more() {
    let client = common::client().await;
    crate::operator::ensure_operator_namespace(&client).await;
    common::install_operator_rbac(&client).await;
    let tenant = Some("some-tenant");
    let own = Some(OPERATOR_NAMESPACE);
    let needed: &[(&str, &str, &str, Option<&str>)] = &[
        ("watch", "m2m.dev", "m2mapps", None),
        ("patch", "m2m.dev", "m2mapps/status", tenant),
        ("watch", "m2m.dev", "organizations", None),
        ("patch", "m2m.dev", "organizations/status", None),
        ("watch", "", "namespaces", None),
        ("watch", "", "secrets", None),
        ("create", "", "secrets", tenant),
        ("patch", "", "secrets", tenant),
        ("delete", "", "secrets", own),
        ("update", "", "secrets", own),
        ("create", "events.k8s.io", "events", tenant),
        ("update", "coordination.k8s.io", "leases", own),
    ];
    for &(verb, group, resource, ns) in needed {
        assert!(
            allowed(&client, verb, group, resource, ns).await,
            "{verb} {group}/{resource} in {ns:?} is needed and granted"
        );
    }
    let refused: &[(&str, &str, &str, Option<&str>)] = &[
        // Tenant Secrets: the operator creates and patches its own, never deletes or replaces
        // any (deletion is the garbage collector's, through owner references).
        ("delete", "", "secrets", tenant),
        ("update", "", "secrets", tenant),
        ("deletecollection", "", "secrets", own),
        // The desired state belongs to users.
        ("update", "m2m.dev", "m2mapps", tenant),
        ("patch", "m2m.dev", "m2mapps", tenant),
        ("delete", "m2m.dev", "m2mapps", tenant),
        ("create", "m2m.dev", "organizations", None),
        ("patch", "m2m.dev", "organizations", None),
        // Nothing else in the cluster, and no way to grant itself more.
        ("get", "", "configmaps", tenant),
        ("create", "", "pods", tenant),
        ("create", "", "serviceaccounts/token", own),
        ("get", "", "namespaces", None),
        ("delete", "", "namespaces", None),
        (
            "update",
            "coordination.k8s.io",
            "leases",
            Some("kube-system"),
        ),
        ("create", "rbac.authorization.k8s.io", "rolebindings", own),
        (
            "escalate",
            "rbac.authorization.k8s.io",
            "clusterroles",
            None,
        ),
        ("impersonate", "", "users", None),
        // Nor lift the admission policy that narrows its Secret writes.
        (
            "delete",
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies",
            None,
        ),
        (
            "patch",
            "admissionregistration.k8s.io",
            "validatingadmissionpolicybindings",
            None,
        ),
        (
            "update",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            None,
        ),
    ];
    for &(verb, group, resource, ns) in refused {
        assert!(
            !allowed(&client, verb, group, resource, ns).await,
            "{verb} {group}/{resource} in {ns:?} is refused"
        );
    }

    // And a real request made as that identity is refused by the API server.
    let mut config = kube::Config::infer().await.expect("kubeconfig");
    config.auth_info.impersonate = Some(OPERATOR_USER.into());
    config.auth_info.impersonate_groups =
        Some(OPERATOR_GROUPS.split(',').map(String::from).collect());
    let as_operator = Client::try_from(config).expect("impersonating client");
    let configmaps: Api<ConfigMap> = Api::namespaced(as_operator, "kube-system");
    match configmaps.get("extension-apiserver-authentication").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("reading a ConfigMap as the operator must be forbidden: {other:?}"),
    }
}
