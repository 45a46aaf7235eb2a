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

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum_server::tls_rustls::RustlsConfig;

use axum::{Router, error_handling::HandleErrorLayer, response::IntoResponse, serve::ListenerExt};
use tokio_util::sync::CancellationToken;
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

/// Errors of the token listener.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on token address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load the TLS certificate {cert} and key {key}: {source}")]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        source: std::io::Error,
    },
    #[error("token server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// A certificate and key (PEM files) for the token listener.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// How often the files are checked for changes.
    pub reload_every: Duration,
}

/// Serves until `shutdown`, then finishes in-flight requests. With `tls`, serves HTTPS and
/// reloads the certificate and key when the files change (cert-manager renewals).
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    tls: Option<TlsFiles>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    let Some(tls) = tls else {
        // TCP_NODELAY: a response is one small write; never hold it back for an ACK.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?
            .tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
        tracing::info!(%addr, "token endpoint listening (HTTP)");
        return axum::serve(listener, make_service)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .map_err(ServeError::Serve);
    };
    let tls_error = |source| ServeError::Tls {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
        source,
    };
    let config = RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .map_err(tls_error)?;
    let handle = axum_server::Handle::new();
    tokio::spawn(reload_tls(config.clone(), tls.clone(), shutdown.clone()));
    tokio::spawn({
        let handle = handle.clone();
        async move {
            shutdown.cancelled().await;
            handle.graceful_shutdown(None);
        }
    });
    tracing::info!(%addr, "token endpoint listening (HTTPS)");
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
    axum_server::bind(addr)
        .acceptor(acceptor)
        .handle(handle)
        .serve(make_service)
        .await
        .map_err(ServeError::Serve)
}

fn modified(files: &TlsFiles) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
    let m = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(&files.cert)?, m(&files.key)?))
}

async fn reload_tls(config: RustlsConfig, files: TlsFiles, shutdown: CancellationToken) {
    let mut seen = modified(&files);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(files.reload_every) => {}
        }
        let now = modified(&files);
        if now.is_some() && now != seen {
            match config.reload_from_pem_file(&files.cert, &files.key).await {
                Ok(()) => {
                    tracing::info!("reloaded the token endpoint's TLS certificate");
                    seen = now;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reloading the TLS certificate failed; keeping the old one")
                }
            }
        }
    }
}
