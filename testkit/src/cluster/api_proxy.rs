//! A test-controlled HTTP proxy in front of the API server, for one operator process: it sees
//! every request that process makes (what reached the API server, with its method and status),
//! and it can cut that process's Lease requests while its other requests still pass, or hold
//! its watches of one path (a watch down while the API server works) and then end them as
//! an API server does whose history no longer reaches back (410 Gone: the process relists).
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
    /// The path (without query) whose watches are held, if any; a change ends the watches of
    /// the newly held path that are streaming.
    watches_held: tokio::sync::watch::Sender<Option<String>>,
}

/// What an API server sends on a watch whose resourceVersion it no longer has.
const GONE: &str = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old resource version\",\"reason\":\"Expired\",\"code\":410}}\n";

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
            watches_held: tokio::sync::watch::Sender::new(None),
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

    /// Ends the process's watches of `path` (e.g. `/api/v1/secrets`, all namespaces) and holds
    /// the ones it starts again, unanswered: its other requests (lists, writes, other watches)
    /// still pass, so what changes meanwhile it does not see.
    pub fn hold_watches(&self, path: &str) {
        self.state.watches_held.send_replace(Some(path.to_owned()));
    }

    /// The held watches are answered as by an API server that no longer has the version they
    /// ask for (410 Gone, in the stream), so the process lists again.
    pub fn release_watches_as_gone(&self) {
        self.state.watches_held.send_replace(None);
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
    let watch = parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
        .then(|| parts.uri.path().to_owned());
    if let Some(watched) = &watch {
        let mut held = state.watches_held.subscribe();
        let mut was_held = false;
        while held.borrow_and_update().as_deref() == Some(watched.as_str()) {
            was_held = true;
            if held.changed().await.is_err() {
                break;
            }
        }
        if was_held {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                GONE,
            )
                .into_response();
        }
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
            let body = axum::body::Body::new(body);
            let Some(watched) = watch else {
                return Response::from_parts(parts, body);
            };
            // A watch of a path that becomes held ends (the process then watches again).
            let mut held = state.watches_held.subscribe();
            let ends = async move {
                let _ = held
                    .wait_for(|h| h.as_deref() == Some(watched.as_str()))
                    .await;
            };
            let stream = futures::StreamExt::take_until(body.into_data_stream(), Box::pin(ends));
            Response::from_parts(parts, axum::body::Body::from_stream(stream))
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
