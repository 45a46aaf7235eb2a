//! The token listener: plain HTTP served by one single-threaded runtime per core, or HTTPS with
//! a certificate that is reloaded when its files change.

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
    #[error("a token serving thread failed: {0}")]
    Thread(String),
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
        return serve_per_core(listener, app, shutdown).await;
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

/// Serving threads: one per core the process may use.
fn serving_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Plain HTTP: this runtime accepts and hands each connection, round robin, to one of
/// [`serving_threads`] threads that each run a single-threaded runtime. A request is then parsed,
/// answered and written by one thread without cross-thread wakeups (measured in
/// docs/benchmarks.md). Graceful: on `shutdown` accepting stops and every thread finishes its
/// in-flight requests.
async fn serve_per_core(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    let mut handoffs = Vec::new();
    let mut done = Vec::new();
    for n in 0..serving_threads() {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let (finished, finished_rx) = tokio::sync::oneshot::channel::<std::io::Result<()>>();
        let app = app.clone();
        let shutdown = shutdown.clone();
        std::thread::Builder::new()
            .name(format!("m2m-token-{n}"))
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|rt| {
                        rt.block_on(async move {
                            let listener = Handoff { rx, local }.tap_io(|tcp| {
                                // A response is one small write; never hold it back for an ACK.
                                let _ = tcp.set_nodelay(true);
                            });
                            axum::serve(
                                listener,
                                app.into_make_service_with_connect_info::<SocketAddr>(),
                            )
                            .with_graceful_shutdown(async move { shutdown.cancelled().await })
                            .await
                        })
                    });
                let _ = finished.send(result);
            })
            .map_err(ServeError::Serve)?;
        handoffs.push(tx);
        done.push(finished_rx);
    }
    let mut next = 0;
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accepting a token connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        next = (next + 1) % handoffs.len();
        if handoffs[next].send((stream, peer)).await.is_err() {
            return Err(ServeError::Thread("a serving thread stopped".into()));
        }
    }
    // Close the socket now, not when the in-flight requests are done: new connections are
    // refused (a client retries another replica) instead of waiting in the backlog.
    drop(listener);
    drop(handoffs);
    for finished in done {
        match finished.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ServeError::Serve(e)),
            Err(_) => return Err(ServeError::Thread("a serving thread panicked".into())),
        }
    }
    Ok(())
}

/// The connections [`serve_per_core`] hands to one serving thread, as an axum listener.
struct Handoff {
    rx: tokio::sync::mpsc::Receiver<(std::net::TcpStream, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for Handoff {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Some((stream, peer)) = self.rx.recv().await else {
                // Accepting has stopped: only the graceful shutdown ends this listener.
                return std::future::pending().await;
            };
            // Registers the socket with this thread's runtime.
            match tokio::net::TcpStream::from_std(stream) {
                Ok(io) => return (io, peer),
                Err(error) => tracing::warn!(%error, "cannot serve a token connection"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
