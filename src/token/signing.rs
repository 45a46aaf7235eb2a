//! Keeping the signing keys: every replica watches the key Secret and re-parses the key ring on
//! each change; the leader plans and writes the key set (see [`super::keys`]).

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use futures::StreamExt;
use k8s_openapi::{ByteString, api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, Client, ResourceExt,
    api::{ObjectMeta, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    jwt,
    keys::{self, DATA_KEY, KEYS_SECRET, KeyPolicy, KeyRing, StoredKeySet},
    service::TokenService,
};
use crate::api::keys::{ANNOTATION_ROTATE, FIELD_MANAGER, LABEL_MANAGED_BY, MANAGED_BY_VALUE};

/// The stored key set in a Secret, if readable.
pub fn stored(secret: &Secret) -> Option<StoredKeySet> {
    let data = secret.data.as_ref()?.get(DATA_KEY)?;
    serde_json::from_slice(&data.0).ok()
}

/// Watches the key Secret: updates the service's key ring and publishes the latest Secret.
/// `ready` is called once a ring with an active key exists.
pub fn watch_keys(
    client: Client,
    namespace: &str,
    service: Arc<TokenService>,
    shutdown: CancellationToken,
    on_ready: impl Fn() + Send + Sync + 'static,
) -> watch::Receiver<Option<Arc<Secret>>> {
    let (tx, rx) = watch::channel(None);
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={KEYS_SECRET}"));
    let stream = watcher(api, config).default_backoff().touched_objects();
    tokio::spawn(async move {
        let run = stream.for_each(|event| {
            match event {
                Ok(secret) => {
                    if secret.metadata.deletion_timestamp.is_none()
                        && let Some(set) = stored(&secret)
                    {
                        let ring = KeyRing::from_stored(&set);
                        let usable = ring.active(Timestamp::now()).is_some();
                        service.set_keys(ring);
                        if usable {
                            on_ready();
                        }
                    }
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

/// Leader only: creates and rotates the keys until `shutdown`.
pub async fn manage_keys(
    client: Client,
    namespace: String,
    policy: KeyPolicy,
    mut latest: watch::Receiver<Option<Arc<Secret>>>,
    shutdown: CancellationToken,
) {
    let api: Api<Secret> = Api::namespaced(client, &namespace);
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
        let set = fresh.as_deref().and_then(stored);
        let request = fresh
            .as_deref()
            .and_then(|s| s.annotations().get(ANNOTATION_ROTATE).cloned());
        let now = Timestamp::now();
        match keys::plan(
            set.as_ref(),
            request.as_deref(),
            &policy,
            now,
            jwt::generate_pkcs8,
        ) {
            Ok(Some(next)) => match write(&api, &namespace, fresh.as_deref(), &next).await {
                Ok(()) => tracing::info!(keys = next.keys.len(), "updated the signing keys"),
                Err(e) => tracing::warn!(error = %e, "writing the signing keys failed; retrying"),
            },
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "planning the signing keys failed"),
        }
        let ring = set.as_ref().map(KeyRing::from_stored);
        let until_activation = ring
            .and_then(|r| r.next_activation(now))
            .and_then(|t| std::time::Duration::try_from(t.duration_since(now)).ok());
        let wait =
            until_activation.map_or(Duration::from_secs(30), |d| d.min(Duration::from_secs(30)));
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = latest.changed() => {},
            () = tokio::time::sleep(wait + Duration::from_millis(50)) => {},
        }
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
