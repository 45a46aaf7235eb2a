//! The token listener: plain HTTP, or HTTPS with a certificate that is reloaded when its files
//! change. Both serve on the caller's (multi-threaded) runtime with TCP_NODELAY.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use axum::{Router, serve::ListenerExt};
use axum_server::tls_rustls::RustlsConfig;
use tokio_util::sync::CancellationToken;

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
    let Some(tls) = tls else {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        tracing::info!(%addr, "token endpoint listening (HTTP)");
        // A response is one small write; never hold it back for an ACK (axum does not set it).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        // On `shutdown` the listening socket closes at once (new connections are refused, a
        // client retries another replica) and the requests in flight finish.
        return axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(ServeError::Serve);
    };
    let make_service = app.into_make_service_with_connect_info::<SocketAddr>();
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
