//! The token listener: plain HTTP, or HTTPS with a certificate that is reloaded when its files
//! change. Both serve on the caller's (multi-threaded) runtime with TCP_NODELAY and the
//! connection limits of [`conn`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use axum::Router;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio_util::sync::CancellationToken;

pub mod conn;

use self::conn::{ConnectionLimits, LimitAcceptor, Listener};
use super::metrics::ConnectionMetrics;

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

/// How the token listener serves: HTTPS or not, and its connection limits.
#[derive(Clone, Debug, Default)]
pub struct ListenerConfig {
    /// With a certificate: HTTPS, reloaded when the files change.
    pub tls: Option<TlsFiles>,
    pub limits: ConnectionLimits,
    pub metrics: ConnectionMetrics,
}

/// Serves until `shutdown`, then finishes in-flight requests. With `tls`, serves HTTPS and
/// reloads the certificate and key when the files change (cert-manager renewals). Both serve
/// through the same acceptor, which applies the connection limits and sets TCP_NODELAY.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    config: ListenerConfig,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    let acceptor = LimitAcceptor::new(Listener::new(config.limits, config.metrics));
    let tls = match &config.tls {
        None => None,
        Some(files) => Some(
            RustlsConfig::from_pem_file(&files.cert, &files.key)
                .await
                .map_err(|source| ServeError::Tls {
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                    source,
                })?,
        ),
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    // On `shutdown` the listening socket closes at once (new connections are refused, a
    // client retries another replica) and the requests in flight finish; idle connections
    // close, and one still sending its head gets no longer than the header-read timeout.
    let handle = axum_server::Handle::<SocketAddr>::new();
    tokio::spawn({
        let (handle, shutdown) = (handle.clone(), shutdown.clone());
        async move {
            shutdown.cancelled().await;
            handle.graceful_shutdown(None);
        }
    });
    let server = axum_server::Server::from_listener(listener).handle(handle);
    match (tls, config.tls) {
        (Some(rustls), Some(files)) => {
            tracing::info!(%addr, "token endpoint listening (HTTPS)");
            tokio::spawn(reload_tls(rustls.clone(), files, shutdown));
            server
                .acceptor(RustlsAcceptor::new(rustls).acceptor(acceptor))
                .serve(make_service)
                .await
        }
        _ => {
            tracing::info!(%addr, "token endpoint listening (HTTP)");
            server.acceptor(acceptor).serve(make_service).await
        }
    }
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
