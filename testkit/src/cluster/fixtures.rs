//! Objects the controller and token tests create, and ways to read their results.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::core::v1::{Event, Secret};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use m2m_operator::{
    api::{M2MApp, Organization},
    credentials::record::{ClientRecord, record_name},
};
use serde_json::{Value, json};

use crate::cluster::{
    common::{self, TEST_MANAGER, wait_for},
    operator::OPERATOR_NAMESPACE,
};

pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn apply_org(client: &Client, name: &str, spec: Value) -> Organization {
    let api: Api<Organization> = Api::all(client.clone());
    let obj = json!({"apiVersion": "m2m.dev/v1alpha1", "kind": "Organization", "metadata": {"name": name}, "spec": spec});
    api.patch(
        name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap_or_else(|e| panic!("apply Organization {name}: {e}"))
}

pub async fn apply_app(client: &Client, ns: &str, name: &str, spec: Value) -> M2MApp {
    let api: Api<M2MApp> = Api::namespaced(client.clone(), ns);
    let obj = json!({"apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
                     "metadata": {"name": name, "namespace": ns}, "spec": spec});
    api.patch(
        name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap_or_else(|e| panic!("apply M2MApp {ns}/{name}: {e}"))
}

pub async fn delete_org(client: &Client, name: &str) {
    let api: Api<Organization> = Api::all(client.clone());
    if let Ok(org) = api.get(name).await {
        common::save_objects(&format!("org-{name}"), &json!(org));
    }
    let _ = api.delete(name, &DeleteParams::default()).await;
}

pub async fn get_app(client: &Client, ns: &str, name: &str) -> M2MApp {
    let api: Api<M2MApp> = Api::namespaced(client.clone(), ns);
    api.get(name)
        .await
        .unwrap_or_else(|e| panic!("get M2MApp {ns}/{name}: {e}"))
}

/// `(status, reason)` of the Ready condition, if any.
pub fn ready(app: &M2MApp) -> Option<(String, String)> {
    app.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

pub fn org_ready(org: &Organization) -> Option<(String, String)> {
    org.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Waits until the app's Ready condition has this status and reason (for the current generation).
pub async fn wait_app_reason(
    client: &Client,
    ns: &str,
    name: &str,
    status: &str,
    reason: &str,
) -> M2MApp {
    wait_for(
        &format!("M2MApp {ns}/{name} Ready={status} {reason}"),
        READY_TIMEOUT,
        || async {
            let app = get_app(client, ns, name).await;
            let observed =
                app.status.as_ref().and_then(|s| s.observed_generation) == app.metadata.generation;
            match ready(&app) {
                Some((s, r)) if s == status && r == reason && observed => Ok(app),
                _ => Err(serde_json::to_string(&app.status).unwrap_or_default()),
            }
        },
    )
    .await
}

pub async fn wait_org_reason(
    client: &Client,
    name: &str,
    status: &str,
    reason: &str,
) -> Organization {
    let api: Api<Organization> = Api::all(client.clone());
    wait_for(
        &format!("Organization {name} Ready={status} {reason}"),
        READY_TIMEOUT,
        || async {
            let org = api.get(name).await.map_err(|e| e.to_string())?;
            match org_ready(&org) {
                Some((s, r)) if s == status && r == reason => Ok(org),
                _ => Err(serde_json::to_string(&org.status).unwrap_or_default()),
            }
        },
    )
    .await
}

pub async fn get_secret(client: &Client, ns: &str, name: &str) -> Option<Secret> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    api.get_opt(name).await.expect("get Secret")
}

/// The Secret's data as text.
/// `(client_id, client_secret)` from the Secret `<app>-credentials`.
pub async fn credentials(client: &Client, ns: &str, app: &str) -> (String, String) {
    let d = data(
        &get_secret(client, ns, &format!("{app}-credentials"))
            .await
            .expect("Secret"),
    );
    (d["client_id"].clone(), d["client_secret"].clone())
}

pub fn data(secret: &Secret) -> BTreeMap<String, String> {
    let map = data_unwatched(secret);
    if let Some(s) = map.get("client_secret") {
        common::watch(s);
    }
    map
}

fn data_unwatched(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// The client record of the app with this UID, if any.
pub async fn record(client: &Client, uid: &str) -> Option<ClientRecord> {
    let api: Api<Secret> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    api.get_opt(&record_name(uid))
        .await
        .expect("get record")
        .map(|s| ClientRecord::from_secret(&s).expect("readable record"))
        .inspect(|r| {
            for hash in [
                r.current.as_ref(),
                r.pending.as_ref().map(|p| &p.hash),
                r.previous.as_ref().map(|p| &p.hash),
            ]
            .into_iter()
            .flatten()
            {
                common::watch(json!(hash).as_str().unwrap_or_default());
            }
        })
}

pub async fn record_secret(client: &Client, uid: &str) -> Option<Secret> {
    let api: Api<Secret> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    api.get_opt(&record_name(uid)).await.expect("get record")
}

async fn events(client: &Client, ns: &str, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .expect("list events")
        .items
}

/// Reasons of the Events about an object.
pub async fn event_reasons(client: &Client, ns: &str, name: &str) -> Vec<String> {
    events(client, ns, name)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

/// Messages of the Events about an object.
pub async fn event_messages(client: &Client, ns: &str, name: &str) -> Vec<String> {
    events(client, ns, name)
        .await
        .into_iter()
        .filter_map(|e| e.message)
        .collect()
}

pub async fn wait_event(client: &Client, ns: &str, name: &str, reason: &str) {
    wait_for(
        &format!("Event {reason} for {ns}/{name}"),
        READY_TIMEOUT,
        || async {
            let reasons = event_reasons(client, ns, name).await;
            if reasons.iter().any(|r| r == reason) {
                Ok(())
            } else {
                Err(format!("{reasons:?}"))
            }
        },
    )
    .await
}

/// A unique Organization name for one test.
pub fn org_name(prefix: &str) -> String {
    format!("{prefix}-{}", common::suffix())
}

pub fn uid(app: &M2MApp) -> String {
    app.uid().expect("uid")
}
