//! A test-controlled HTTP proxy in front of the API server, for one operator process: it sees
//! every request that process makes (what reached the API server, with its method and status),
//! and it can cut that process's Lease requests while its other requests still pass.
//!
//! The operator speaks plain HTTP to the proxy (a kubeconfig of its own, no credentials); the
//! proxy forwards with the test's admin client. The operator's impersonation headers pass
//! through, so the API server still sees the operator's ServiceAccount and its RBAC.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{Request, State},
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
};

/// One request the proxy forwarded to the API server.
#[derive(Clone)]
pub struct Forwarded {
    /// When the proxy started forwarding it (the test process's clock).
    pub at: Instant,
    pub method: Method,
    pub path: String,
    /// The API server's answer (0: no answer).
    pub status: u16,
}

impl Forwarded {
    pub fn is_write(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }
}

impl std::fmt::Display for Forwarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} -> {}", self.method, self.path, self.status)
    }
}

struct ProxyState {
    client: kube::Client,
    leases_cut: AtomicBool,
    log: Mutex<Vec<Forwarded>>,
}

/// The proxy; stops when dropped.
pub struct ApiProxy {
    state: Arc<ProxyState>,
    pub kubeconfig: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl ApiProxy {
    /// Starts the proxy and writes a kubeconfig that points at it.
    pub async fn start(client: kube::Client) -> Self {
        let state = Arc::new(ProxyState {
            client,
            leases_cut: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let kubeconfig = std::env::temp_dir().join(format!(
            "m2m-proxy-{}-{port}.kubeconfig",
            crate::cluster::common::suffix()
        ));
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\n\
                 clusters: [{{name: proxy, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n\
                 users: [{{name: proxy, user: {{}}}}]\n\
                 contexts: [{{name: proxy, context: {{cluster: proxy, user: proxy}}}}]\n\
                 current-context: proxy\n"
            ),
        )
        .expect("write the proxy kubeconfig");
        Self {
            state,
            kubeconfig,
            server,
        }
    }

    /// From now on the process's Lease requests hang (as in a partition) and are never
    /// forwarded; everything else still passes.
    pub fn cut_leases(&self) {
        self.state.leases_cut.store(true, Ordering::SeqCst);
    }

    /// Lease requests pass again; the ones that hung get 503 without being forwarded.
    pub fn heal(&self) {
        self.state.leases_cut.store(false, Ordering::SeqCst);
    }

    /// Every request forwarded so far.
    pub fn forwarded(&self) -> Vec<Forwarded> {
        self.state.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for ApiProxy {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.uri.path().contains("/leases") && state.leases_cut.load(Ordering::SeqCst) {
        while state.leases_cut.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let at = Instant::now();
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let mut upstream = axum::http::Request::builder()
        .method(parts.method.clone())
        .uri(&path);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH && name != header::CONNECTION {
            upstream = upstream.header(name, value);
        }
    }
    let Ok(upstream) = upstream.body(kube::client::Body::from(bytes.to_vec())) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let answer = state.client.send(upstream).await;
    let status = answer.as_ref().map_or(0, |r| r.status().as_u16());
    if let Ok(mut log) = state.log.lock() {
        log.push(Forwarded {
            at,
            method: parts.method,
            path,
            status,
        });
    }
    match answer {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            parts.headers.remove(header::CONNECTION);
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, axum::body::Body::new(body))
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
