//! The settings of each component, from the command line: what `main` hands to the token
//! endpoint, the controllers, the key manager and leader election.

use super::RunConfig;
use crate::{
    controller::ControllerConfig,
    credentials::secret::Endpoints,
    leader::LeaseConfig,
    token::{
        self, TokenConfig, authn::source::TrustedProxies, listener::conn::ConnectionLimits,
        metrics::ConnectionMetrics, signing_keys::KeyPolicy,
    },
};

impl RunConfig {
    /// The token endpoint's settings.
    pub fn token_config(&self) -> TokenConfig {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        TokenConfig {
            operator_namespace: self.namespace.clone(),
            issuer: self.issuer.clone(),
            token_url: self.token_url(),
            argon2_workers: self.argon2_workers.unwrap_or(cores),
            argon2_max_in_flight: self.argon2_max_in_flight,
            max_failures_per_client: self.max_failures_per_client,
            max_failures_per_source: self.max_failures_per_source,
            failure_window: self.failure_window,
            global_apps: self.global_apps(),
            quota_service: Some(self.quota_service.clone()).filter(|s| !s.is_empty()),
            trusted_proxies: TrustedProxies {
                networks: self.trusted_proxies.clone(),
                header: self.forwarded_header,
            },
        }
    }

    /// How ServiceAccount tokens are accepted as client assertions.
    pub fn service_account_settings(&self) -> token::authn::service_account::SaSettings {
        token::authn::service_account::SaSettings {
            audience: self.issuer.clone(),
            max_lifetime: self.service_account_token_max_lifetime,
            review_ttl: self.token_review_ttl,
        }
    }

    /// The request limits of the token router.
    pub fn request_limits(&self) -> token::Limits {
        token::Limits {
            max_concurrent: self.max_concurrent_requests,
            timeout: self.request_timeout,
        }
    }

    /// The token listener's settings: TLS if configured, the connection limits.
    pub fn listener_config(&self, metrics: ConnectionMetrics) -> token::ListenerConfig {
        let tls = self
            .tls_cert_file
            .clone()
            .zip(self.tls_key_file.clone())
            .map(|(cert, key)| token::TlsFiles {
                cert,
                key,
                reload_every: std::time::Duration::from_secs(10),
            });
        token::ListenerConfig {
            tls,
            limits: ConnectionLimits {
                header_read_timeout: self.header_read_timeout,
                idle_timeout: self.idle_timeout,
                max_connections: self.max_connections,
            },
            metrics,
        }
    }

    /// The controllers' settings, for the replica `identity`.
    pub fn controller_config(&self, identity: &str) -> ControllerConfig {
        ControllerConfig {
            operator_namespace: self.namespace.clone(),
            endpoints: Endpoints {
                issuer: self.issuer.clone(),
                token_url: self.token_url(),
            },
            resync: self.resync,
            instance: identity.to_owned(),
            global_apps: self.global_apps(),
            template_keys: self.template_keys(),
            usage_report_interval: self.usage_report_interval,
            record_visible_within: crate::controller::RECORD_VISIBLE_WITHIN,
        }
    }

    /// How the leader keeps the signing keys.
    pub fn key_policy(&self) -> KeyPolicy {
        KeyPolicy {
            alg: self.signing_algorithm,
            rotate_every: self.signing_key_rotation,
            publish_ahead: self.signing_key_publish_ahead,
            keep_retired: self.signing_key_retention,
        }
    }

    /// The Lease of leader election, held as `identity`.
    pub fn lease_config(&self, identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: self.namespace.clone(),
            name: self.lease_name.clone(),
            identity: identity.to_owned(),
            duration: self.lease_duration,
            renew_before: self.lease_renew_before,
        }
    }
}
