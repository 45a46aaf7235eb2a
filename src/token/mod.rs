//! The embedded OAuth 2.0 token endpoint every replica serves: client credentials in, a signed
//! JWT out (RFC 6749 §4.4, RFC 9068), plus introspection (RFC 7662), JWKS and RFC 8414 metadata.
//! It answers from the watch-fed cache and never calls the API server on the request path.

pub mod claims;
pub mod error;
pub mod index;
pub mod jwt;
pub mod keys;
pub mod metrics;
pub mod request;
pub mod server;
pub mod service;
pub mod signing;
pub mod throttle;
pub mod verify;

use std::{sync::Arc, time::Duration};

use axum::{Router, error_handling::HandleErrorLayer, response::IntoResponse};
use tower::{
    ServiceBuilder, limit::ConcurrencyLimitLayer, load_shed::LoadShedLayer, timeout::TimeoutLayer,
};
use tower_http::limit::RequestBodyLimitLayer;

use self::error::OAuthError;

/// Largest accepted request body: token requests are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// Limits of the listener.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_concurrent: usize,
    pub timeout: Duration,
}

/// The router with request hardening: a body limit checked before parsing, a timeout, and a
/// concurrency limit that sheds load with 503 instead of queueing without bound.
pub fn router(service: Arc<service::TokenService>, limits: &Limits) -> Router {
    service::routes(service)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|error: tower::BoxError| async move {
                    // Both answers are OAuth errors (JSON, Retry-After), like every other one.
                    if error.is::<tower::timeout::error::Elapsed>() {
                        OAuthError::timed_out().into_response()
                    } else {
                        OAuthError::overloaded().into_response()
                    }
                }))
                .layer(LoadShedLayer::new())
                .layer(ConcurrencyLimitLayer::new(limits.max_concurrent))
                .layer(TimeoutLayer::new(limits.timeout)),
        )
}

pub use self::server::{ServeError, TlsFiles, serve};
