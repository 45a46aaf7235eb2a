//! The token endpoint's shared state: its settings, the cache it answers from, the signing
//! keys, the verifier and the throttles, behind accessors.

use std::sync::{Arc, Mutex, RwLock};

use super::{
    authn::{
        service_account::{SaSettings, ServiceAccounts},
        source::{SourceKey, TrustedProxies},
        throttle::Throttle,
        verify::Verifier,
    },
    clients,
    metrics::TokenMetrics,
    signing_keys::KeyRing,
};
use crate::cache::Cache;

/// Settings of the token endpoint.
#[derive(Clone, Debug)]
pub struct TokenConfig {
    pub operator_namespace: String,
    pub issuer: String,
    pub token_url: String,
    /// argon2id checks at once.
    pub argon2_workers: usize,
    /// argon2id checks admitted at once (running and queued).
    pub argon2_max_in_flight: usize,
    /// Failed authentications per `client_id` per window before its slow path is throttled.
    pub max_failures_per_client: u32,
    /// Failed authentications per source address per window.
    pub max_failures_per_source: u32,
    pub failure_window: std::time::Duration,
    /// Proxies whose forwarding header names the source address.
    pub trusted_proxies: TrustedProxies,
    /// Where global apps may live (the controller applies the same policy).
    pub global_apps: crate::tenancy::GlobalApps,
    /// The token Service whose ready endpoints divide the quotas (`None`: each replica admits
    /// whole quotas).
    pub quota_service: Option<String>,
}

/// Shared state of the handlers.
pub struct TokenService {
    pub(super) cache: Cache,
    pub(super) config: TokenConfig,
    keys: RwLock<Arc<KeyRing>>,
    pub(super) verifier: Verifier,
    /// Failures per `client_id`.
    pub(super) client_throttle: Mutex<Throttle<String>>,
    /// Failures per source address (IPv6: per /64).
    pub(super) source_throttle: Mutex<Throttle<SourceKey>>,
    pub(super) metrics: TokenMetrics,
    /// This replica's quota counters.
    pub(super) quotas: super::quota::Quotas,
    /// What this replica reports to the leader (quotas exceeded, previous secrets used).
    pub(super) usage: Arc<crate::usage::Recorder>,
    /// `jti`s of accepted `private_key_jwt` assertions (this replica's).
    pub(super) replays: super::authn::client_jwt::Replays,
    /// ServiceAccount-token authentication (`None`: no cluster to ask, e.g. in HTTP tests).
    pub(super) service_accounts: Option<ServiceAccounts>,
}

impl TokenService {
    /// The service over `cache`, registering its metrics.
    pub fn new(
        cache: Cache,
        config: TokenConfig,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Self {
        /// Most throttled keys remembered at once.
        const MAX_THROTTLED_KEYS: usize = 100_000;
        let verifier = Verifier::new(config.argon2_workers, config.argon2_max_in_flight);
        Self {
            client_throttle: Mutex::new(Throttle::new(
                config.max_failures_per_client,
                config.failure_window,
                MAX_THROTTLED_KEYS,
            )),
            source_throttle: Mutex::new(Throttle::new(
                config.max_failures_per_source,
                config.failure_window,
                MAX_THROTTLED_KEYS,
            )),
            metrics: TokenMetrics::register(registry, verifier.gauges()),
            verifier,
            quotas: super::quota::Quotas::default(),
            usage: Arc::default(),
            keys: RwLock::default(),
            service_accounts: None,
            replays: Default::default(),
            cache,
            config,
        }
    }

    /// Accepts ServiceAccount tokens of the cluster `client` talks to as client assertions.
    pub fn with_service_accounts(mut self, client: kube::Client, settings: SaSettings) -> Self {
        let issuer = Arc::new(super::sa_issuer::SaIssuer::new(client));
        self.service_accounts = Some(ServiceAccounts::new(issuer, settings));
        self
    }

    /// Forgets the secret proofs of clients whose record is gone (every 10 minutes, until
    /// `shutdown`), so deleted apps leave nothing behind in memory.
    pub async fn prune_proofs(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let cache = &self.cache;
            self.verifier.retain(|client_id| {
                clients::uid_of(client_id).is_some_and(|uid| {
                    cache
                        .records
                        .get(&crate::credentials::record::record_name(&uid))
                        .is_some()
                })
            });
            self.quotas.prune(super::quota::now_unix());
        }
    }

    /// Replaces the key ring (on every change of the key Secret).
    pub fn set_keys(&self, ring: KeyRing) {
        if let Ok(mut keys) = self.keys.write() {
            *keys = Arc::new(ring);
        }
    }

    /// The listener's connection metrics (registered with the endpoint's).
    pub fn connection_metrics(&self) -> super::metrics::ConnectionMetrics {
        self.metrics.connections.clone()
    }

    /// The argon2id pool's gauges (jobs running, checks admitted).
    pub fn pool_gauges(&self) -> &super::authn::verify::PoolGauges {
        self.verifier.gauges()
    }

    /// The replica count the quota shares divide by (kept by [`super::quota::replicas::watch`]).
    pub fn quota_replicas(&self) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
        self.quotas.replicas_handle()
    }

    /// What this replica has to report to the leader.
    pub fn usage(&self) -> Arc<crate::usage::Recorder> {
        self.usage.clone()
    }

    /// The endpoint's metrics.
    pub fn metrics(&self) -> &TokenMetrics {
        &self.metrics
    }

    /// The settings the service runs with.
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.keys.read().map(|k| k.clone()).unwrap_or_default()
    }
}
