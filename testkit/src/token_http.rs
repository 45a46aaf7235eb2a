//! The token endpoint's in-process fixture, shared by the HTTP tests: the real router and
//! handlers over a cache filled with three Organizations and five apps.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::connect_info::MockConnectInfo,
    http::{Method, Request, StatusCode, header},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use m2m_operator::{
    credentials::{
        generate::{ClientSecret, client_id},
        hash,
    },
    token::{self, TokenConfig, TokenService, jwt::Algorithm},
};
use serde_json::Value;
use tower::ServiceExt;

use crate::world::{self as testing, FixtureApp, World};

pub const ISSUER: &str = "https://m2m.example.com";
pub const NS: &str = "m2m-system";

pub struct App {
    pub uid: &'static str,
    pub name: &'static str,
    pub namespace: &'static str,
    pub org: Option<&'static str>,
    pub scopes: &'static [&'static str],
    pub disabled: bool,
    pub secret: &'static str,
}

pub const ACME: App = App {
    uid: "00000000-0000-4000-8000-000000000001",
    name: "agent",
    namespace: "tenant-a",
    org: Some("acme"),
    scopes: &["read", "write"],
    disabled: false,
    secret: "m2msec_acme",
};
pub const GLOBEX: App = App {
    uid: "00000000-0000-4000-8000-000000000002",
    name: "agent",
    namespace: "tenant-b",
    org: Some("globex"),
    scopes: &["read"],
    disabled: false,
    secret: "m2msec_globex",
};
pub const GLOBAL: App = App {
    uid: "00000000-0000-4000-8000-000000000003",
    name: "sync",
    namespace: "platform",
    org: None,
    scopes: &["admin"],
    disabled: false,
    secret: "m2msec_global",
};
pub const DISABLED: App = App {
    uid: "00000000-0000-4000-8000-000000000004",
    name: "off",
    namespace: "tenant-a",
    org: Some("acme"),
    scopes: &[],
    disabled: true,
    secret: "m2msec_off",
};
pub const SUSPENDED: App = App {
    uid: "00000000-0000-4000-8000-000000000005",
    name: "paused",
    namespace: "tenant-c",
    org: Some("initech"),
    scopes: &[],
    disabled: false,
    secret: "m2msec_paused",
};
pub const ALL: [&App; 5] = [&ACME, &GLOBEX, &GLOBAL, &DISABLED, &SUSPENDED];

pub struct Fixture {
    pub router: Router,
    pub service: Arc<TokenService>,
}

/// The fixture tenants: three Organizations (initech suspended) and the apps of `ALL`.
pub fn world() -> World {
    let mut world = World::new(NS);
    for ns in ["tenant-a", "tenant-b", "tenant-c", "platform"] {
        world.namespace(ns);
    }
    world
        .org("acme", "org_acme", "tenant-a", &["read", "write"], false)
        .org(
            "globex",
            "org_globex",
            "tenant-b",
            &["read", "write"],
            false,
        )
        .org(
            "initech",
            "org_initech",
            "tenant-c",
            &["read", "write"],
            true,
        );
    for a in ALL {
        world.app(&FixtureApp {
            uid: a.uid.into(),
            name: a.name.into(),
            namespace: a.namespace.into(),
            org: a.org.map(str::to_owned),
            scopes: a.scopes.iter().map(|s| s.to_string()).collect(),
            audiences: vec!["api".into(), "billing".into()],
            disabled: a.disabled,
            current: testing::phc(&hash::hash(&ClientSecret::new(a.secret)).unwrap()),
        });
    }
    world
}

pub fn service(cache: m2m_operator::cache::Cache) -> Arc<TokenService> {
    service_with(cache, |_| {})
}

/// The fixture's service with settings changed by `edit`.
pub fn service_with(
    cache: m2m_operator::cache::Cache,
    edit: impl FnOnce(&mut TokenConfig),
) -> Arc<TokenService> {
    let mut config = TokenConfig {
        operator_namespace: NS.into(),
        issuer: ISSUER.into(),
        token_url: format!("{ISSUER}/oauth2/token"),
        argon2_workers: 2,
        argon2_max_in_flight: 64,
        max_failures_per_client: 3,
        max_failures_per_source: 1000,
        failure_window: Duration::from_secs(60),
        trusted_proxies: Default::default(),
        global_apps: m2m_operator::tenancy::GlobalApps::anywhere(),
        quota_service: None,
    };
    edit(&mut config);
    let service = Arc::new(TokenService::new(
        cache,
        config,
        &mut prometheus_client::registry::Registry::default(),
    ));
    service.set_keys(testing::key_ring(Algorithm::ES256).unwrap());
    service
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_timeout(Duration::from_secs(10))
    }

    pub fn with_timeout(timeout: Duration) -> Self {
        Self::over(world().finish(), timeout)
    }

    /// The router over `cache` (a world the test keeps changing).
    pub fn over(cache: m2m_operator::cache::Cache, timeout: Duration) -> Self {
        Self::with_service(service(cache), timeout)
    }

    /// The router over `cache` with settings changed by `edit`.
    pub fn over_with(
        cache: m2m_operator::cache::Cache,
        edit: impl FnOnce(&mut TokenConfig),
    ) -> Self {
        Self::with_service(service_with(cache, edit), Duration::from_secs(10))
    }

    /// The fixture world with settings changed by `edit`.
    pub fn with_config(edit: impl FnOnce(&mut TokenConfig)) -> Self {
        Self::with_service(
            service_with(world().finish(), edit),
            Duration::from_secs(10),
        )
    }

    /// The router over `service`.
    pub fn with_service(service: Arc<TokenService>, timeout: Duration) -> Self {
        let limits = token::Limits {
            max_concurrent: 64,
            timeout,
        };
        let router = token::router(service.clone(), &limits)
            .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        Self { router, service }
    }

    pub async fn call(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, body)
    }

    pub async fn post(
        &self,
        path: &str,
        auth: Option<String>,
        body: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(auth) = auth {
            req = req.header(header::AUTHORIZATION, auth);
        }
        self.call(req.body(Body::from(body.to_owned())).unwrap())
            .await
    }

    pub async fn token(
        &self,
        app: &App,
        extra: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let body = format!("grant_type=client_credentials{extra}");
        self.post(
            "/oauth2/token",
            Some(basic(&client_id(app.uid), app.secret)),
            &body,
        )
        .await
    }

    pub async fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        let (status, _, body) = self
            .call(
                Request::get("/.well-known/jwks.json")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        serde_json::from_value(body).unwrap()
    }
}

pub fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))
}

/// Verifies with the `jsonwebtoken` crate against the JWKS the endpoint serves.
pub async fn verified_claims(f: &Fixture, token: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let set = f.jwks().await;
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[ISSUER]);
    validation.validate_aud = false;
    validation.required_spec_claims = ["exp", "iss", "sub", "aud"]
        .into_iter()
        .map(String::from)
        .collect();
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims
}

/// A token listener over real TCP (`token::serve`, as the operator runs it), stopped by
/// `shutdown`.
pub struct Served {
    pub addr: SocketAddr,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub server: tokio::task::JoinHandle<Result<(), token::ServeError>>,
}

/// Serves `service` on a free local port with `listener`'s settings; returns once it accepts.
pub async fn listen(service: Arc<TokenService>, listener: token::ListenerConfig) -> Served {
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let limits = token::Limits {
        max_concurrent: 64,
        timeout: Duration::from_secs(10),
    };
    let server = tokio::spawn(token::serve(
        addr,
        token::router(service, &limits),
        listener,
        shutdown.clone(),
    ));
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Served {
        addr,
        shutdown,
        server,
    }
}

/// The raw HTTP/1.1 token request of `id` with `secret` (Basic), on a connection that closes.
pub fn raw_token_request(id: &str, secret: &str) -> Vec<u8> {
    let body = "grant_type=client_credentials";
    format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        basic(id, secret),
        body.len()
    )
    .into_bytes()
}

/// Sends one token request on a fresh connection; returns the status and the JSON body.
pub async fn token_over_tcp(addr: SocketAddr, id: &str, secret: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&raw_token_request(id, secret))
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}
