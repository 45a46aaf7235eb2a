//! Token endpoint metrics.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use super::authn::verify::PoolGauges;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `token` or `introspect`.
    pub endpoint: &'static str,
    /// `issued` / `active` / `inactive`, or the OAuth error code.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuotaLabels {
    /// `app` or `organization`.
    pub scope: &'static str,
    /// `minute` or `day`.
    pub period: &'static str,
    /// `enforce` (the request was refused) or `observe` (the token was issued anyway).
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// `client_secret_basic`, `client_secret_post`, `service_account_token`.
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabels {
    /// `header_timeout`, `idle_timeout` or `evicted`.
    pub reason: &'static str,
}

/// The token listener's connections.
#[derive(Debug, Clone, Default)]
pub struct ConnectionMetrics {
    /// `m2m_token_connections`: connections open now.
    pub open: Gauge,
    /// `m2m_token_connections_closed_total{reason}`: connections the listener closed.
    pub closed: Family<ClosedLabels, Counter>,
}

impl ConnectionMetrics {
    pub fn closed(&self, reason: &'static str) {
        self.closed.get_or_create(&ClosedLabels { reason }).inc();
    }
}

#[derive(Debug, Clone)]
pub struct TokenMetrics {
    /// `m2m_token_requests_total{endpoint, outcome}`.
    pub requests: Family<OutcomeLabels, Counter>,
    /// `m2m_tokens_issued_with_previous_secret_total`.
    pub previous_secret: Counter,
    /// `m2m_token_quota_exceeded_total{scope, period, mode}`: token requests that found a quota
    /// used up (no per-app label: the audit log names the app).
    pub quota_exceeded: Family<QuotaLabels, Counter>,
    /// `m2m_token_request_duration_seconds{endpoint}`.
    pub duration: Family<EndpointLabels, Histogram>,
    /// `m2m_tokens_issued_by_auth_method_total{method}`.
    pub by_method: Family<MethodLabels, Counter>,
    /// `m2m_argon2_jobs_running`, `m2m_argon2_admitted`.
    pub argon2: PoolGauges,
    pub connections: ConnectionMetrics,
}

impl TokenMetrics {
    pub fn register(registry: &mut Registry, argon2: &PoolGauges) -> Self {
        let m = Self {
            argon2: argon2.clone(),
            connections: ConnectionMetrics::default(),
            requests: Family::default(),
            previous_secret: Counter::default(),
            quota_exceeded: Family::default(),
            by_method: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 16))
            }),
        };
        registry.register(
            "token_requests",
            "Token endpoint requests by outcome",
            m.requests.clone(),
        );
        registry.register(
            "tokens_issued_with_previous_secret",
            "Tokens issued to a client that authenticated with its previous (grace-period) secret",
            m.previous_secret.clone(),
        );
        registry.register(
            "token_quota_exceeded",
            "Token requests that found a quota used up, by scope (app, organization), period and mode (enforce: refused, observe: issued)",
            m.quota_exceeded.clone(),
        );
        registry.register(
            "tokens_issued_by_auth_method",
            "Tokens issued by how the client authenticated",
            m.by_method.clone(),
        );
        registry.register(
            "token_request_duration_seconds",
            "Token endpoint latency",
            m.duration.clone(),
        );
        registry.register(
            "argon2_jobs_running",
            "argon2id checks running on the token endpoint's pool (at most --argon2-workers)",
            m.argon2.running.clone(),
        );
        registry.register(
            "argon2_admitted",
            "argon2id checks admitted, running or queued (at most --argon2-max-in-flight)",
            m.argon2.admitted.clone(),
        );
        registry.register(
            "token_connections",
            "Connections open on the token listener (at most --max-connections)",
            m.connections.open.clone(),
        );
        registry.register(
            "token_connections_closed",
            "Connections the token listener closed: header_timeout, idle_timeout, evicted",
            m.connections.closed.clone(),
        );
        m
    }
}

impl TokenMetrics {
    /// Counts one request of `endpoint` with its outcome, without a latency (a request refused
    /// before its handler ran: shed or timed out).
    pub fn count(&self, endpoint: &'static str, outcome: &'static str) {
        self.requests
            .get_or_create(&OutcomeLabels { endpoint, outcome })
            .inc();
    }

    /// Counts each quota a token request found used up.
    pub fn quota_exceeded(&self, exceeded: &[super::quota::window::Exceeded]) {
        for e in exceeded {
            self.quota_exceeded
                .get_or_create(&QuotaLabels {
                    scope: e.scope.as_str(),
                    period: e.period.as_str(),
                    mode: e.mode.as_str(),
                })
                .inc();
        }
    }

    /// Counts one token issued to a client that authenticated with `method`.
    pub fn issued_by_method(&self, method: &'static str) {
        self.by_method.get_or_create(&MethodLabels { method }).inc();
    }

    /// Counts one request of `endpoint` with its outcome and records its latency.
    pub fn observe(
        &self,
        endpoint: &'static str,
        outcome: &'static str,
        started: std::time::Instant,
    ) {
        self.requests
            .get_or_create(&OutcomeLabels { endpoint, outcome })
            .inc();
        self.duration
            .get_or_create(&EndpointLabels { endpoint })
            .observe(started.elapsed().as_secs_f64());
    }
}
