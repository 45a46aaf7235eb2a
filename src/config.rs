//! Command line and environment configuration (`clap`, every flag with an env fallback).

use std::{net::SocketAddr, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};

mod components;
mod validate;
pub use validate::{CLOCK_SKEW, ConfigError, JWKS_MAX_AGE, MAX_TOKEN_LIFETIME};

/// Kubernetes operator for tenant-scoped OAuth 2.0 machine-to-machine credentials.
#[derive(Debug, Parser)]
#[command(name = "m2m-operator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controllers, the token endpoint and the admin server until SIGTERM.
    Run(Box<RunConfig>),
    /// Print both CustomResourceDefinitions as multi-document YAML (or write them to a folder).
    Crd {
        /// Write one file per CRD into this folder instead of printing.
        #[arg(long, conflicts_with = "reference")]
        out_dir: Option<std::path::PathBuf>,
        /// Print the Markdown field reference (docs/crd-reference.md) instead of the YAML.
        #[arg(long)]
        reference: bool,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log pipelines).
    Json,
    /// Human-readable lines.
    Text,
}

/// Configuration of `m2m-operator run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunConfig {
    /// Address of the admin listener: /healthz, /readyz, /metrics.
    #[arg(long, env = "M2M_ADMIN_ADDR", default_value = "0.0.0.0:8081")]
    pub admin_addr: SocketAddr,

    /// Log format.
    #[arg(long, env = "M2M_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,

    /// Namespace the operator runs in: client records, signing keys and the Lease live here.
    #[arg(long, env = "M2M_NAMESPACE", default_value = "m2m-system")]
    pub namespace: String,

    /// Issuer URL: the `iss` claim and the base of the discovery documents.
    #[arg(long, env = "M2M_ISSUER")]
    pub issuer: String,

    /// Public URL of the token endpoint written into every Secret. Default: `<issuer>/oauth2/token`.
    #[arg(long, env = "M2M_TOKEN_URL")]
    pub token_url: Option<String>,

    /// Run the controllers only while holding the Lease (needed with more than one replica).
    #[arg(long, env = "M2M_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the Lease used for leader election.
    #[arg(long, env = "M2M_LEASE_NAME", default_value = "m2m-operator")]
    pub lease_name: String,

    /// How long the Lease lasts without renewal: a dead leader is replaced within this.
    #[arg(long, env = "M2M_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    pub lease_duration: Duration,

    /// How long before the Lease expires the leader renews it.
    #[arg(long, env = "M2M_LEASE_RENEW_BEFORE", default_value = "5s", value_parser = duration)]
    pub lease_renew_before: Duration,

    /// This replica's identity in the Lease and in Events. Default: the host name and PID.
    #[arg(long, env = "M2M_POD_NAME")]
    pub identity: Option<String>,

    /// How often an unchanged object is reconciled anyway.
    #[arg(long, env = "M2M_RESYNC", default_value = "1h", value_parser = duration)]
    pub resync: Duration,

    /// Address of the token endpoint listener.
    #[arg(long, env = "M2M_TOKEN_ADDR", default_value = "0.0.0.0:8080")]
    pub token_addr: SocketAddr,

    /// PEM certificate (chain) for HTTPS on the token listener; reloaded when it changes.
    #[arg(long, env = "M2M_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<std::path::PathBuf>,

    /// PEM private key for HTTPS on the token listener.
    #[arg(long, env = "M2M_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<std::path::PathBuf>,

    /// Algorithm of new signing keys.
    #[arg(
        long,
        env = "M2M_SIGNING_ALGORITHM",
        value_enum,
        default_value = "ES256"
    )]
    pub signing_algorithm: crate::token::jwt::Algorithm,

    /// How long a signing key signs before the next one takes over.
    #[arg(long, env = "M2M_SIGNING_KEY_ROTATION", default_value = "720h", value_parser = duration)]
    pub signing_key_rotation: Duration,

    /// How long a new signing key is published in the JWKS before it signs. Must exceed how long
    /// verifiers cache the JWKS (it is served with max-age 300s) and not exceed the rotation.
    #[arg(long, env = "M2M_SIGNING_KEY_PUBLISH_AHEAD", default_value = "1h", value_parser = duration)]
    pub signing_key_publish_ahead: Duration,

    /// How long a retired signing key stays published: the longest token lifetime (24h) plus
    /// skew, at least 24h1m.
    #[arg(long, env = "M2M_SIGNING_KEY_RETENTION", default_value = "24h5m", value_parser = duration)]
    pub signing_key_retention: Duration,

    /// Accept signing-key timings that break verifiers (a publish-ahead within the JWKS cache
    /// age, a retention below the longest token lifetime plus skew, a rotation shorter than the
    /// publish-ahead), with a warning at start: only for tests and demos that rotate keys in
    /// seconds.
    #[arg(long, env = "M2M_UNSAFE_KEY_TIMINGS", default_value_t = false, action = clap::ArgAction::Set)]
    pub unsafe_key_timings: bool,

    /// argon2id checks run at once on the token endpoint (default: the number of cores).
    #[arg(long, env = "M2M_ARGON2_WORKERS")]
    pub argon2_workers: Option<usize>,

    /// argon2id checks admitted at once (running and queued); beyond, requests get 503.
    #[arg(long, env = "M2M_ARGON2_MAX_IN_FLIGHT", default_value_t = 64)]
    pub argon2_max_in_flight: usize,

    /// Failed authentications per client_id per window before its argon2 path is throttled.
    #[arg(long, env = "M2M_MAX_FAILURES_PER_CLIENT", default_value_t = 10)]
    pub max_failures_per_client: u32,

    /// Failed authentications per source address per window before it is throttled.
    #[arg(long, env = "M2M_MAX_FAILURES_PER_SOURCE", default_value_t = 100)]
    pub max_failures_per_source: u32,

    /// The throttling window.
    #[arg(long, env = "M2M_FAILURE_WINDOW", default_value = "1m", value_parser = duration)]
    pub failure_window: Duration,

    /// The longest remaining lifetime (`exp` - now) a ServiceAccount token used as a client
    /// assertion may have; a longer-lived token is refused (a stolen one is useful for less).
    #[arg(
        long,
        env = "M2M_SERVICE_ACCOUNT_TOKEN_MAX_LIFETIME",
        default_value = "1h",
        value_parser = duration
    )]
    pub service_account_token_max_lifetime: Duration,

    /// How long the API server's TokenReview answer about a ServiceAccount token is trusted:
    /// a token whose Pod or ServiceAccount was deleted is refused at most this long after.
    #[arg(long, env = "M2M_TOKEN_REVIEW_TTL", default_value = "60s", value_parser = duration)]
    pub token_review_ttl: Duration,

    /// Proxies (comma-separated CIDRs or addresses) whose forwarding header names the source
    /// address for throttling. Default: none; the TCP peer is the source.
    #[arg(
        long,
        env = "M2M_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = crate::token::authn::source::parse_network
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// The header the trusted proxies write the client's address into.
    #[arg(
        long,
        env = "M2M_FORWARDED_HEADER",
        value_enum,
        default_value = "x-forwarded-for"
    )]
    pub forwarded_header: crate::token::authn::source::ForwardedHeader,

    /// Token requests served at once; beyond, requests get 503 at once.
    #[arg(long, env = "M2M_MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,

    /// Longest time a token request may take.
    #[arg(long, env = "M2M_REQUEST_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub request_timeout: Duration,

    /// Longest time the token listener waits for a request's head (its first request from the
    /// accept, later ones from their first byte); a client sending slower is disconnected.
    #[arg(long, env = "M2M_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub header_read_timeout: Duration,

    /// Longest time a token connection stays open with no request in flight (keep-alive).
    /// Keep it above the idle timeout of the proxies in front (nginx and cloud load balancers
    /// default to 60s), so that they, not the operator, close idle connections.
    #[arg(long, env = "M2M_IDLE_TIMEOUT", default_value = "90s", value_parser = duration)]
    pub idle_timeout: Duration,

    /// Most connections the token listener keeps open; beyond, a new connection replaces the
    /// oldest one that is not serving a request. Keep it below the open-files limit.
    #[arg(long, env = "M2M_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Namespaces (comma-separated) where global apps (no `spec.organizationRef`: tokens without
    /// `org_code`, any scope) are allowed. Default: the operator's own namespace. Elsewhere a
    /// global app is `Ready=False, NamespaceNotAllowed`, gets no Secret, and gets no tokens.
    #[arg(long, env = "M2M_GLOBAL_APP_NAMESPACES", value_delimiter = ',')]
    pub global_app_namespaces: Option<Vec<String>>,

    /// Also allow global apps in namespaces carrying all of these labels (`key=value,...`).
    /// Whoever can label namespaces can then create global apps: give it only to platform admins.
    #[arg(long, env = "M2M_GLOBAL_APP_NAMESPACE_LABELS", value_parser = labels)]
    pub global_app_namespace_labels: Option<std::collections::BTreeMap<String, String>>,

    /// The token Service (in `--namespace`) whose ready endpoints divide each token quota
    /// between the replicas: each admits `ceil(quota / ready endpoints)`. Empty: each replica
    /// admits whole quotas (right for one replica).
    #[arg(long, env = "M2M_QUOTA_SERVICE", default_value = "")]
    pub quota_service: String,

    /// How often at most each replica writes its usage report (quotas exceeded, previous
    /// secrets used) for the leader; the first change after a quiet interval is written at once.
    #[arg(long, env = "M2M_USAGE_REPORT_INTERVAL", default_value = "5s", value_parser = duration)]
    pub usage_report_interval: Duration,

    /// Label and annotation keys an M2MApp's `secretTemplate` may set (comma-separated patterns;
    /// `*` matches any run of characters without `/`: `*` is every unprefixed key, `*/*` every
    /// key). Keys under `m2m.dev/`, `kubernetes.io/` and `k8s.io/` are never allowed. An app
    /// asking for another key is `Ready=False, SecretTemplateNotAllowed` and its Secret is not
    /// written.
    #[arg(
        long,
        env = "M2M_SECRET_TEMPLATE_ALLOWED_KEYS",
        value_delimiter = ',',
        default_value = "*,app.kubernetes.io/*,reloader.stakater.com/*,secret.reloader.stakater.com/*"
    )]
    pub secret_template_allowed_keys: Vec<String>,

    /// After SIGTERM: how long the replica reports not ready but keeps serving tokens, so load
    /// balancers stop sending before it stops accepting. In-flight requests are then finished.
    #[arg(long, env = "M2M_SHUTDOWN_DELAY", default_value = "5s", value_parser = duration)]
    pub shutdown_delay: Duration,
}

impl RunConfig {
    /// The token URL written into Secrets.
    pub fn token_url(&self) -> String {
        self.token_url
            .clone()
            .unwrap_or_else(|| format!("{}/oauth2/token", self.issuer.trim_end_matches('/')))
    }

    /// Where global apps may live.
    pub fn global_apps(&self) -> crate::tenancy::GlobalApps {
        crate::tenancy::GlobalApps {
            namespaces: match &self.global_app_namespaces {
                Some(list) => list
                    .iter()
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect(),
                None => vec![self.namespace.clone()],
            },
            labels: self.global_app_namespace_labels.clone().unwrap_or_default(),
            anywhere: false,
        }
    }

    /// The keys a `secretTemplate` may set.
    pub fn template_keys(&self) -> crate::credentials::template::TemplateKeys {
        crate::credentials::template::TemplateKeys::new(
            self.secret_template_allowed_keys
                .iter()
                .map(|p| p.trim().to_owned()),
        )
    }

    /// The identity of this replica.
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "m2m-operator".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }
}

fn labels(value: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    crate::tenancy::parse_labels(value)
}

fn duration(value: &str) -> Result<Duration, String> {
    crate::api::duration::parse(value).map_err(|e| e.to_string())
}
