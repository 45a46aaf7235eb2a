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
pub mod service;
pub mod signing;
pub mod throttle;
pub mod verify;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, error_handling::HandleErrorLayer, http::StatusCode, response::IntoResponse};
use tokio_util::sync::CancellationToken;
use tower::{ServiceBuilder, limit::ConcurrencyLimitLayer, load_shed::LoadShedLayer};
use tower_http::{limit::RequestBodyLimitLayer, timeout::TimeoutLayer};

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
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.timeout,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    OAuthError::overloaded().into_response()
                }))
                .layer(LoadShedLayer::new())
                .layer(ConcurrencyLimitLayer::new(limits.max_concurrent)),
        )
}

/// Errors of the token listener.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on token address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("token server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Serves until `shutdown`, then finishes in-flight requests.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    tracing::info!(%addr, "token endpoint listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
    .map_err(ServeError::Serve)
}
