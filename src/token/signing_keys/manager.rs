//! Keeping the signing keys: every replica watches the key Secret and re-parses the key ring on
//! each change; the leader plans and writes the key set (see [`super::lifecycle`]).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use futures::StreamExt;
use k8s_openapi::{ByteString, api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ObjectMeta, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use prometheus_client::{metrics::gauge::Gauge, registry::Registry};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    lifecycle::{DATA_KEY, KEYS_SECRET, KeyPolicy, StoredKeySet},
    secret::{self as key_secret, KeyAction, KeySecret, Unreadable},
};
use crate::api::names::{ANNOTATION_ROTATE, FIELD_MANAGER, LABEL_MANAGED_BY, MANAGED_BY_VALUE};
use crate::token::{TokenService, jwt};

/// Reason of the Warning Event on the key Secret when the leader cannot read it.
pub const REASON_UNREADABLE: &str = "SigningKeysUnreadable";

/// The stored key set in a Secret, if readable.
pub fn stored(secret: &Secret) -> Option<StoredKeySet> {
    let data = secret.data.as_ref()?.get(DATA_KEY)?;
    serde_json::from_slice(&data.0).ok()
}

/// `m2m_signing_keys_unreadable`: 1 while the latest version of the key Secret this replica saw
/// cannot be read (it then signs and publishes with the last key set it could read).
#[derive(Clone, Debug, Default)]
pub struct KeyMetrics {
    pub unreadable: Gauge,
}

impl KeyMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "signing_keys_unreadable",
            "1 while the signing-key Secret cannot be read (the last readable key set is kept)",
            metrics.unreadable.clone(),
        );
        metrics
    }
}

/// Watches the key Secret: updates the service's key ring and publishes the latest Secret.
/// `ready` is called once a ring with an active key exists. A version that cannot be read
/// replaces nothing: the replica keeps signing with the ring it holds.
pub fn watch_keys(
    client: Client,
    namespace: &str,
    service: Arc<TokenService>,
    metrics: KeyMetrics,
    shutdown: CancellationToken,
    on_ready: impl Fn() + Send + Sync + 'static,
) -> watch::Receiver<Option<Arc<Secret>>> {
    let (tx, rx) = watch::channel(None);
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={KEYS_SECRET}"));
    let stream = watcher(api, config)
        .backoff(crate::cache::backoff::watch_backoff())
        .touched_objects();
    let reported = Mutex::new(None);
    tokio::spawn(async move {
        let run = stream.for_each(|event| {
            match event {
                Ok(secret) if secret.metadata.deletion_timestamp.is_none() => {
                    match key_secret::read(Some(&secret)) {
                        KeySecret::Readable { ring, .. } => {
                            metrics.unreadable.set(0);
                            let usable = ring.active(Timestamp::now()).is_some();
                            service.set_keys(ring);
                            if usable {
                                on_ready();
                            }
                        }
                        KeySecret::Unreadable(problem) => {
                            metrics.unreadable.set(1);
                            if first_report(&reported, &secret) {
                                log_unreadable(&service, &problem);
                            }
                        }
                        KeySecret::Missing => {}
                    }
                    let _ = tx.send(Some(Arc::new(secret)));
                }
                Ok(secret) => {
                    let _ = tx.send(Some(Arc::new(secret)));
                }
                Err(e) => tracing::warn!(error = %e, "watching the signing keys failed; retrying"),
            }
            futures::future::ready(())
        });
        tokio::select! {
            () = run => {},
            () = shutdown.cancelled() => {},
        }
    });
    rx
}

/// Whether this version of the Secret was not reported yet (a relist sends it again).
fn first_report(reported: &Mutex<Option<String>>, secret: &Secret) -> bool {
    let version = secret.resource_version();
    match reported.lock() {
        Ok(mut last) if *last != version => {
            *last = version;
            true
        }
        Ok(_) => false,
        Err(_) => true,
    }
}

fn log_unreadable(service: &TokenService, problem: &Unreadable) {
    let held = service.key_ring();
    let kids: Vec<&str> = held.published().map(|k| k.kid.as_str()).collect();
    if held.active(Timestamp::now()).is_some() {
        tracing::error!(
            secret = KEYS_SECRET,
            problem = %problem,
            category = problem.category(),
            kept_kids = ?kids,
            "the signing-key Secret cannot be read; still signing and publishing the last key set that could be read (docs/operations.md: an unreadable signing-key Secret)"
        );
    } else {
        tracing::error!(
            secret = KEYS_SECRET,
            problem = %problem,
            category = problem.category(),
            "the signing-key Secret cannot be read and this replica holds no earlier key set: not ready (no token can be signed) until the Secret is fixed (docs/operations.md: an unreadable signing-key Secret)"
        );
    }
}

/// Leader only: creates and rotates the keys until `shutdown`. A key Secret it cannot read is
/// never written: it says so once per version, in its log and in a Warning Event on the Secret.
pub async fn manage_keys(
    client: Client,
    namespace: String,
    policy: KeyPolicy,
    instance: String,
    mut latest: watch::Receiver<Option<Arc<Secret>>>,
    shutdown: CancellationToken,
) {
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let events = crate::events::Publisher::new(client.clone(), FIELD_MANAGER, &instance);
    let mut refused_version = None;
    loop {
        let current = latest.borrow_and_update().clone();
        // Read fresh: the watch may lag behind our own last write.
        let fresh = match api.get_opt(KEYS_SECRET).await {
            Ok(s) => s.map(Arc::new),
            Err(e) => {
                tracing::warn!(error = %e, "reading the signing keys failed");
                current
            }
        };
        let read = key_secret::read(fresh.as_deref());
        let request = fresh
            .as_deref()
            .and_then(|s| s.annotations().get(ANNOTATION_ROTATE).cloned());
        let now = Timestamp::now();
        match key_secret::leader_action(
            &read,
            request.as_deref(),
            &policy,
            now,
            jwt::generate_pkcs8,
        ) {
            Ok(KeyAction::Write(next)) => {
                match write(&api, &namespace, fresh.as_deref(), &next).await {
                    Ok(()) => tracing::info!(keys = next.keys.len(), "updated the signing keys"),
                    Err(e) => {
                        tracing::warn!(error = %e, "writing the signing keys failed; retrying");
                    }
                }
            }
            Ok(KeyAction::Keep) => {}
            Ok(KeyAction::Refuse(problem)) => {
                let version = fresh.as_deref().and_then(ResourceExt::resource_version);
                if let Some(secret) = fresh.as_deref()
                    && refused_version != version
                {
                    refused_version = version;
                    report_refusal(&events, secret, &problem).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "planning the signing keys failed"),
        }
        let until_activation = match &read {
            KeySecret::Readable { ring, .. } => ring
                .next_activation(now)
                .and_then(|t| std::time::Duration::try_from(t.duration_since(now)).ok()),
            _ => None,
        };
        let wait =
            until_activation.map_or(Duration::from_secs(30), |d| d.min(Duration::from_secs(30)));
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = latest.changed() => if changed.is_err() {
                // The key watch is gone (the process is shutting down): so is this loop, so
                // the leader's supervisor sees it end instead of it spinning.
                tracing::warn!("the signing-key watch ended; the key manager stops");
                return;
            },
            () = tokio::time::sleep(wait + Duration::from_millis(50)) => {},
        }
    }
}

async fn report_refusal(events: &crate::events::Publisher, secret: &Secret, problem: &Unreadable) {
    tracing::error!(
        secret = KEYS_SECRET,
        problem = %problem,
        category = problem.category(),
        "not writing the signing-key Secret: it cannot be read, and replacing it would drop every key that signed tokens still in use (docs/operations.md: an unreadable signing-key Secret)"
    );
    let note = crate::events::Note::warning(
        REASON_UNREADABLE,
        "ReadSigningKeys",
        format!(
            "{problem}. The operator keeps signing with the last key set it could read and will not rotate or replace the keys until {DATA_KEY} is fixed (docs/operations.md)."
        ),
    );
    if let Err(e) = events.publish(&secret.object_ref(&()), &note).await {
        tracing::warn!(error = %e, "publishing an Event failed");
    }
}

async fn write(
    api: &Api<Secret>,
    namespace: &str,
    existing: Option<&Secret>,
    set: &StoredKeySet,
) -> Result<(), kube::Error> {
    let json = serde_json::to_vec(set).map_err(kube::Error::SerdeError)?;
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    match existing {
        None => {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(KEYS_SECRET.to_owned()),
                    namespace: Some(namespace.to_owned()),
                    labels: Some(
                        [(LABEL_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned())].into(),
                    ),
                    ..ObjectMeta::default()
                },
                type_: Some("Opaque".to_owned()),
                data: Some([(DATA_KEY.to_owned(), ByteString(json))].into()),
                ..Secret::default()
            };
            api.create(&params, &secret).await.map(|_| ())
        }
        Some(existing) => {
            let mut secret = existing.clone();
            secret.metadata.managed_fields = None;
            secret
                .data
                .get_or_insert_with(Default::default)
                .insert(DATA_KEY.to_owned(), ByteString(json));
            api.replace(KEYS_SECRET, &params, &secret).await.map(|_| ())
        }
    }
}

/// A readable summary of a key set for logs (kids and times, never key material).
pub fn describe(set: &StoredKeySet) -> String {
    set.keys
        .iter()
        .map(|k| {
            let kid = STANDARD
                .decode(&k.pkcs8)
                .ok()
                .and_then(|der| jwt::SigningKey::from_pkcs8(k.alg, &der).ok())
                .map(|s| s.kid)
                .unwrap_or_default();
            format!("{kid} {:?} from {}", k.alg, k.active_from)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
