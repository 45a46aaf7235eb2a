//! What the chaos run does to the apps: create, rotate, a second writer, and a watch of
//! every Secret value it sees.

use crate::{common::TEST_MANAGER, fixtures::*, operator::OPERATOR_NAMESPACE};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use m2m_operator::api::M2MApp;
use rand::Rng;
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::*;

/// Creates every app, a few at a time.
pub(super) async fn create(
    client: Client,
    ns: String,
    names: Vec<String>,
    spec: serde_json::Value,
) {
    let apps: Api<M2MApp> = Api::namespaced(client, &ns);
    for name in &names {
        let obj = json!({"apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
                         "metadata": {"name": name}, "spec": spec});
        let (params, patch) = (PatchParams::apply(TEST_MANAGER).force(), Patch::Apply(&obj));
        retry(&format!("create {name}"), || {
            apps.patch(name, &params, &patch)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Requests one rotation of each of the first apps once it has credentials.
pub(super) async fn rotate(client: Client, ns: String, names: Vec<String>, n_rotations: usize) {
    let apps: Api<M2MApp> = Api::namespaced(client, &ns);
    for name in names.iter().take(n_rotations) {
        loop {
            let ready = apps
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|a| ready(&a));
            if ready.is_some_and(|(status, _)| status == "True") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let rotate = json!({"metadata": {"annotations": {"m2m.dev/rotate": "chaos"}}});
        let (params, patch) = (PatchParams::default(), Patch::Merge(&rotate));
        retry(&format!("rotate {name}"), || {
            apps.patch(name, &params, &patch)
        })
        .await;
    }
}

/// A second writer touching the same objects: app labels, the tenant Secrets' labels and the
/// client records' annotations, so the operator's writes meet conflicts. Returns its writes.
pub(super) async fn intrude(
    client: Client,
    ns: String,
    names: Vec<String>,
    stop: CancellationToken,
) -> u64 {
    let apps: Api<M2MApp> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let records: Api<Secret> = Api::namespaced(client, OPERATOR_NAMESPACE);
    let mut writes = 0u64;
    while !stop.is_cancelled() {
        let name = &names[rand::rng().random_range(0..names.len())];
        let touch = json!({"metadata": {"labels": {"chaos/touch": writes.to_string()}}});
        let merge = Patch::Merge(&touch);
        let p = PatchParams::default();
        if apps.patch(name, &p, &merge).await.is_ok() {
            writes += 1;
        }
        if secrets
            .patch(&format!("{name}-credentials"), &p, &merge)
            .await
            .is_ok()
        {
            writes += 1;
        }
        if let Ok(Some(app)) = apps.get_opt(name).await {
            let record = format!("m2m-client-{}", uid(&app));
            let note = json!({"metadata": {"annotations": {"chaos/touch": writes.to_string()}}});
            if records
                .patch(&record, &p, &Patch::Merge(&note))
                .await
                .is_ok()
            {
                writes += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writes
}

pub(super) async fn watch_secrets(client: Client, ns: String, seen: Seen, stop: CancellationToken) {
    while !stop.is_cancelled() {
        observe(&client, &ns, &seen).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
