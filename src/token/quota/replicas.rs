//! How many replicas share each quota: the ready endpoints of the token Service
//! (`--quota-service`), read from its EndpointSlices in the operator's namespace. Every replica
//! watches them; a replica that sees none (the Service not set, not found, no slice yet) counts
//! one replica, so it admits whole quotas rather than none.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, reflector, watcher},
};
use tokio_util::sync::CancellationToken;

/// The label EndpointSlices carry with the name of their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Ready endpoints across `slices`, each pod counted once (a dual-stack Service has one slice
/// per address family for the same pods). An endpoint without a `ready` condition is ready
/// (the API's own rule); a terminating one is not.
pub fn ready_endpoints<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> usize {
    let mut seen = HashSet::new();
    for slice in slices {
        for endpoint in slice.endpoints.iter().flatten() {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            let identity = endpoint
                .target_ref
                .as_ref()
                .and_then(|r| r.uid.clone().or_else(|| r.name.clone()))
                .or_else(|| endpoint.addresses.first().cloned());
            if let Some(identity) = identity {
                seen.insert(identity);
            }
        }
    }
    seen.len()
}

/// Keeps `replicas` at the ready endpoints of `service` until `shutdown`.
pub fn watch(
    client: Client,
    namespace: &str,
    service: Option<String>,
    replicas: Arc<AtomicUsize>,
    shutdown: CancellationToken,
) {
    let Some(service) = service.filter(|s| !s.is_empty()) else {
        tracing::info!("no --quota-service: each replica admits whole quotas");
        return;
    };
    let api: Api<EndpointSlice> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={service}"));
    let (store, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api, config).backoff(crate::cache::backoff::watch_backoff()),
    );
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                event = stream.next() => event,
            };
            match event {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, service, "watching the token Service's endpoints failed; retrying");
                }
                Some(Ok(_)) => {
                    let state = store.state();
                    let ready = ready_endpoints(state.iter().map(AsRef::as_ref));
                    let before = replicas.swap(ready, Ordering::Relaxed);
                    if before != ready {
                        tracing::info!(
                            service,
                            replicas = ready.max(1),
                            ready_endpoints = ready,
                            "quota shares now divide by the token Service's ready replicas"
                        );
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::{
        core::v1::ObjectReference,
        discovery::v1::{Endpoint, EndpointConditions},
    };

    use super::*;

    fn endpoint(pod: &str, ready: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec![format!("10.0.0.{}", pod.len())],
            conditions: Some(EndpointConditions {
                ready,
                ..EndpointConditions::default()
            }),
            target_ref: Some(ObjectReference {
                name: Some(pod.to_owned()),
                uid: Some(format!("uid-{pod}")),
                ..ObjectReference::default()
            }),
            ..Endpoint::default()
        }
    }

    fn slice(endpoints: Vec<Endpoint>) -> EndpointSlice {
        EndpointSlice {
            endpoints: Some(endpoints),
            ..EndpointSlice::default()
        }
    }

    #[test]
    fn ready_pods_count_once_across_slices_and_terminating_ones_not_at_all() {
        let v4 = slice(vec![
            endpoint("a", Some(true)),
            endpoint("bb", None),
            endpoint("ccc", Some(false)),
        ]);
        let v6 = slice(vec![endpoint("a", Some(true)), endpoint("bb", Some(true))]);
        assert_eq!(ready_endpoints([&v4, &v6]), 2);
        assert_eq!(ready_endpoints([]), 0);
    }
}
