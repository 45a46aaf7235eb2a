//! Waiting until the run settles, and the invariants that must hold afterwards.

use crate::{
    common::wait_for,
    fixtures::*,
    http,
    operator::{OPERATOR_NAMESPACE, Operator},
};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt, api::ListParams};
use m2m_operator::{
    api::M2MApp,
    credentials::record::{COMPONENT_CLIENT_RECORD, ClientRecord, LABEL_COMPONENT},
};
use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

/// Waits until every app is Ready, the rotated ones at revision 2.
pub(super) async fn wait_settled(
    client: &Client,
    ns: &str,
    n_apps: usize,
    rotated: &BTreeSet<String>,
) -> Vec<M2MApp> {
    let apps: Api<M2MApp> = Api::namespaced(client.clone(), ns);
    wait_for(
        "every app Ready at its revision",
        Duration::from_secs(180),
        || async {
            let list = apps
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items;
            let bad: Vec<String> = list
                .iter()
                .filter(|a| {
                    let want = if rotated.contains(&a.name_any()) {
                        2
                    } else {
                        1
                    };
                    let revision = a
                        .status
                        .as_ref()
                        .and_then(|s| s.rotation.as_ref())
                        .map(|r| r.revision);
                    ready(a).is_none_or(|(s, r)| s != "True" || r != "CredentialsIssued")
                        || revision != Some(want)
                })
                .map(|a| format!("{} {:?}", a.name_any(), ready(a)))
                .collect();
            if list.len() == n_apps && bad.is_empty() {
                Ok(list)
            } else {
                Err(format!(
                    "{} apps, not settled: {:?}",
                    list.len(),
                    &bad[..bad.len().min(5)]
                ))
            }
        },
    )
    .await
}

/// No client_id changed, no secret changed but by the requested rotation, every Secret owned by
/// its app and its secret getting a token, one client record per app, none orphaned.
pub(super) async fn check_invariants(
    client: &Client,
    op: &Operator,
    ns: &str,
    final_apps: &[M2MApp],
    rotated: &BTreeSet<String>,
    seen: &BTreeMap<String, BTreeSet<(String, String)>>,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    for app in final_apps {
        let name = app.name_any();
        let status = app.status.as_ref().unwrap();
        let ids: BTreeSet<&String> = seen[&name].iter().map(|(id, _)| id).collect();
        assert_eq!(
            ids.len(),
            1,
            "{name}: one client_id over the whole run: {ids:?}"
        );
        assert_eq!(status.client_id.as_ref(), ids.into_iter().next());
        let secrets_seen = seen[&name].len();
        let allowed = if rotated.contains(&name) { 2 } else { 1 };
        assert!(
            secrets_seen <= allowed,
            "{name}: {secrets_seen} secrets seen, {allowed} allowed"
        );
        let secret = secrets.get(&format!("{name}-credentials")).await.unwrap();
        let owner = secret
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true));
        assert_eq!(
            owner.map(|o| &o.uid),
            app.metadata.uid.as_ref(),
            "{name}: Secret owned by its app"
        );
        let d = data(&secret);
        let (code, body) = http::token(&op.url(), &d["client_id"], &d["client_secret"], &[]).await;
        assert_eq!(code, 200, "{name}: {body}");
    }
    let records: Api<Secret> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let selector = format!("{LABEL_COMPONENT}={COMPONENT_CLIENT_RECORD}");
    let uids: BTreeSet<String> = final_apps.iter().map(uid).collect();
    let ours: Vec<ClientRecord> = records
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|s| ClientRecord::from_secret(s).ok())
        .filter(|r| r.app.namespace == ns)
        .collect();
    assert_eq!(ours.len(), final_apps.len(), "one record per app");
    assert!(
        ours.iter().all(|r| uids.contains(&r.app.uid)),
        "every record belongs to a live app"
    );
}
