//! The admin listener: `/healthz` (500 with the reason once the process cannot recover by
//! itself, e.g. its controllers died: the kubelet's liveness probe then restarts it),
//! `/readyz` (ready only once every registered component says so, e.g. after the caches have
//! synced) and `/metrics` in the Prometheus text format.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio_util::sync::CancellationToken;

type Components = Vec<(&'static str, Arc<AtomicBool>)>;

/// Readiness of the process: ready when every registered component is ready.
#[derive(Clone, Default)]
pub struct Readiness {
    components: Arc<Mutex<Components>>,
}

impl Readiness {
    /// Registers a component, not ready until [`ReadyFlag::set`] is called.
    pub fn register(&self, name: &'static str) -> ReadyFlag {
        let flag = Arc::new(AtomicBool::new(false));
        if let Ok(mut components) = self.components.lock() {
            components.push((name, flag.clone()));
        }
        ReadyFlag(flag)
    }

    /// Names of the components that are not ready yet (empty when ready).
    pub fn not_ready(&self) -> Vec<&'static str> {
        match self.components.lock() {
            Ok(components) => components
                .iter()
                .filter(|(_, flag)| !flag.load(Ordering::Acquire))
                .map(|(name, _)| *name)
                .collect(),
            Err(_) => vec!["readiness"],
        }
    }
}

/// One component's readiness switch.
#[derive(Clone)]
pub struct ReadyFlag(Arc<AtomicBool>);

impl ReadyFlag {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
}

/// Liveness of the process: healthy until something it cannot recover from is reported.
#[derive(Clone, Default)]
pub struct Health {
    failure: Arc<Mutex<Option<String>>>,
}

impl Health {
    /// Reports the process unhealthy for good; the first reason is kept. The reason is shown
    /// on `/healthz`: a fixed description, never data from the cluster or a request.
    pub fn fail(&self, reason: impl Into<String>) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert_with(|| reason.into());
        }
    }

    /// Why the process is unhealthy (`None`: healthy).
    pub fn failure(&self) -> Option<String> {
        match self.failure.lock() {
            Ok(failure) => failure.clone(),
            Err(_) => Some("health state poisoned".to_owned()),
        }
    }
}

#[derive(Clone)]
struct AdminState {
    readiness: Readiness,
    health: Health,
    registry: Arc<Registry>,
}

/// The admin router.
pub fn router(readiness: Readiness, health: Health, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AdminState {
            readiness,
            health,
            registry,
        })
}

async fn healthz(State(state): State<AdminState>) -> impl IntoResponse {
    match state.health.failure() {
        None => (StatusCode::OK, "ok\n".to_owned()),
        Some(reason) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unhealthy: {reason}\n"),
        ),
    }
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let waiting = state.readiness.not_ready();
    if waiting.is_empty() {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("waiting for: {}\n", waiting.join(", ")),
        )
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "metrics encoding failed\n".to_owned(),
        ),
    }
}

/// Errors of the admin server.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on admin address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Serves the admin router until `shutdown` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    shutdown: CancellationToken,
) -> Result<(), AdminError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    tracing::info!(%addr, "admin server listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(AdminError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_component_is() {
        let readiness = Readiness::default();
        let caches = readiness.register("caches");
        let keys = readiness.register("signing-keys");
        assert_eq!(readiness.not_ready(), vec!["caches", "signing-keys"]);
        caches.set(true);
        assert_eq!(readiness.not_ready(), vec!["signing-keys"]);
        keys.set(true);
        assert!(readiness.not_ready().is_empty());
    }

    #[tokio::test]
    async fn healthz_fails_with_the_first_reason_once_reported() {
        use tower::ServiceExt;

        let health = Health::default();
        let app = router(
            Readiness::default(),
            health.clone(),
            Arc::new(Registry::default()),
        );
        let get = || {
            axum::http::Request::get("/healthz")
                .body(axum::body::Body::empty())
                .unwrap_or_default()
        };
        let ok = app.clone().oneshot(get()).await.unwrap_or_default();
        assert_eq!(ok.status(), StatusCode::OK);
        health.fail("the controllers task panicked while leading");
        health.fail("a later reason");
        let failed = app.oneshot(get()).await.unwrap_or_default();
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(failed.into_body(), 1024)
            .await
            .unwrap_or_default();
        assert_eq!(
            body,
            "unhealthy: the controllers task panicked while leading\n"
        );
    }
}
