//! The embedded OAuth 2.0 token endpoint every replica serves: client credentials in, a signed
//! JWT out (RFC 6749 §4.4, RFC 9068), plus introspection (RFC 7662), JWKS and RFC 8414 metadata.
//! It answers from the watch-fed cache and never calls the API server on the request path.

pub mod authn;
pub mod claims;
pub mod clients;
pub mod http;
pub mod jwt;
pub mod listener;
pub mod metrics;
pub mod quota;
pub mod sa_issuer;
pub mod signing_keys;
mod state;

use std::{sync::Arc, time::Duration};

use axum::{
    Router, error_handling::HandleErrorLayer, extract::DefaultBodyLimit, http::Uri,
    response::IntoResponse,
};
use tower::{
    ServiceBuilder, limit::ConcurrencyLimitLayer, load_shed::LoadShedLayer, timeout::TimeoutLayer,
};

use self::http::error::OAuthError;
pub use self::{
    listener::{ListenerConfig, ServeError, TlsFiles, serve},
    state::{TokenConfig, TokenService},
};

/// Largest accepted request body: token requests are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// Limits of the listener.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_concurrent: usize,
    pub timeout: Duration,
}

/// The router with request hardening: a body limit (a larger body is refused with 413 before
/// parsing, read no further than the limit), a timeout, and a concurrency limit that sheds
/// load with 503 instead of queueing without bound. A request the timeout or the shedding
/// refuses never reaches its handler: it is counted and audited here.
pub fn router(service: Arc<TokenService>, limits: &Limits) -> Router {
    let metrics = service.metrics.clone();
    http::routes(service)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(
                    move |uri: Uri, error: tower::BoxError| {
                        let metrics = metrics.clone();
                        async move {
                            // Both answers are OAuth errors (JSON, Retry-After), like every other one.
                            let refusal = if error.is::<tower::timeout::error::Elapsed>() {
                                OAuthError::timed_out()
                            } else {
                                OAuthError::overloaded()
                            };
                            if let Some(endpoint) = http::endpoint(uri.path()) {
                                let outcome = refusal.outcome();
                                metrics.count(endpoint, outcome);
                                if endpoint == "token" {
                                    tracing::info!(
                                        target: "m2m_operator::audit",
                                        endpoint,
                                        outcome,
                                        reason = refusal.description.as_str(),
                                        "token request"
                                    );
                                }
                            }
                            refusal.into_response()
                        }
                    },
                ))
                .layer(LoadShedLayer::new())
                .layer(ConcurrencyLimitLayer::new(limits.max_concurrent))
                .layer(TimeoutLayer::new(limits.timeout)),
        )
}
