//! The HTTP handlers: token, introspection, JWKS and discovery.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, RwLock},
    time::Instant,
};

use axum::{
    Json, Router,
    extract::{ConnectInfo, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use k8s_openapi::jiff::Timestamp;

use super::{
    authn::{Origin, authenticate},
    claims::{self, AccessClaims},
    error::{ErrorCode, OAuthError, no_store},
    index::{self, Client, Standing},
    jwt,
    keys::KeyRing,
    metrics::TokenMetrics,
    request,
    source::{SourceKey, TrustedProxies},
    throttle::Throttle,
    verify::Verifier,
};
use crate::{cache::Cache, credentials::record::SecretKind, tenancy::Grant};

/// Settings of the token endpoint.
#[derive(Clone, Debug)]
pub struct TokenConfig {
    pub operator_namespace: String,
    pub issuer: String,
    pub token_url: String,
    /// argon2id checks at once.
    pub argon2_workers: usize,
    /// argon2id checks admitted at once (running and queued).
    pub argon2_max_in_flight: usize,
    /// Failed authentications per `client_id` per window before its slow path is throttled.
    pub max_failures_per_client: u32,
    /// Failed authentications per source address per window.
    pub max_failures_per_source: u32,
    pub failure_window: std::time::Duration,
    /// Proxies whose forwarding header names the source address.
    pub trusted_proxies: TrustedProxies,
    /// Where global apps may live (the controller applies the same policy).
    pub global_apps: crate::tenancy::GlobalApps,
}

/// Shared state of the handlers.
pub struct TokenService {
    pub cache: Cache,
    pub config: TokenConfig,
    pub keys: RwLock<Arc<KeyRing>>,
    pub verifier: Verifier,
    /// Failures per `client_id`.
    pub client_throttle: Mutex<Throttle<String>>,
    /// Failures per source address (IPv6: per /64).
    pub source_throttle: Mutex<Throttle<SourceKey>>,
    /// Parsed client records.
    pub parsed: index::ParsedRecords,
    pub metrics: TokenMetrics,
}

impl TokenService {
    /// The service over `cache`, registering its metrics.
    pub fn new(
        cache: Cache,
        config: TokenConfig,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Self {
        /// Most throttled keys remembered at once.
        const MAX_THROTTLED_KEYS: usize = 100_000;
        let verifier = Verifier::new(config.argon2_workers, config.argon2_max_in_flight);
        Self {
            client_throttle: Mutex::new(Throttle::new(
                config.max_failures_per_client,
                config.failure_window,
                MAX_THROTTLED_KEYS,
            )),
            source_throttle: Mutex::new(Throttle::new(
                config.max_failures_per_source,
                config.failure_window,
                MAX_THROTTLED_KEYS,
            )),
            metrics: TokenMetrics::register(registry, verifier.gauges()),
            verifier,
            parsed: index::ParsedRecords::default(),
            keys: RwLock::default(),
            cache,
            config,
        }
    }

    /// The same service checking plain SHA-256 digests instead of argon2id hashes: the
    /// benchmark's baseline, never used by the operator.
    pub fn with_plain_sha256_baseline(mut self) -> Self {
        self.verifier = Verifier::plain_sha256_baseline();
        self
    }

    /// Forgets the secret proofs of clients whose record is gone (every 10 minutes, until
    /// `shutdown`), so deleted apps leave nothing behind in memory.
    pub async fn prune_proofs(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let cache = &self.cache;
            let namespace = &self.config.operator_namespace;
            self.verifier.retain(|client_id| {
                index::uid_of(client_id).is_some_and(|uid| {
                    cache
                        .records
                        .get(
                            &kube::runtime::reflector::ObjectRef::new(
                                &crate::credentials::record::record_name(&uid),
                            )
                            .within(namespace),
                        )
                        .is_some()
                })
            });
        }
    }

    /// Replaces the key ring (on every change of the key Secret).
    pub fn set_keys(&self, ring: KeyRing) {
        if let Ok(mut keys) = self.keys.write() {
            *keys = Arc::new(ring);
        }
    }

    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.keys.read().map(|k| k.clone()).unwrap_or_default()
    }
}

/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/oauth2/token";
/// Path of the introspection endpoint.
pub const INTROSPECT_PATH: &str = "/oauth2/introspect";

/// The metrics `endpoint` label of a path, for the paths that count requests.
pub fn endpoint(path: &str) -> Option<&'static str> {
    match path {
        TOKEN_PATH => Some("token"),
        INTROSPECT_PATH => Some("introspect"),
        _ => None,
    }
}

/// The token endpoint's routes.
pub fn routes(service: Arc<TokenService>) -> Router {
    Router::new()
        .route(TOKEN_PATH, post(token))
        .route(INTROSPECT_PATH, post(introspect))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata))
        .with_state(service)
}

/// What the audit line of one request says. Never a secret, a hash or a token.
#[derive(Default)]
struct Audit {
    client_id: Option<String>,
    /// The authenticated client (its namespace and name).
    client: Option<Client>,
    org_code: Option<String>,
    /// The claims of the issued token (scope, audiences, jti).
    claims: Option<AccessClaims>,
    previous_secret: bool,
}

/// The body of a successful token response (RFC 6749 §5.1).
#[derive(serde::Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

fn form_content_type(headers: &HeaderMap) -> Result<(), OAuthError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if ok {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ))
    }
}

/// The grant of an authenticated client, or `unauthorized_client`.
fn authorize(svc: &TokenService, client: &Client) -> Result<Grant, OAuthError> {
    match index::standing(&svc.cache, client, &svc.config.global_apps) {
        Standing::Allowed(grant) => Ok(grant),
        Standing::Blocked(block) => Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            block.message(),
        )),
        Standing::Refused(refusal) => Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("the client may not get tokens now ({})", refusal.reason()),
        )),
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn lifetime_secs(client: &Client) -> i64 {
    crate::api::duration::parse(&client.app.spec.token_lifetime)
        .map(|d| d.as_secs())
        .unwrap_or(3600)
        .clamp(60, 86_400) as i64
}

async fn issue(
    svc: &TokenService,
    headers: &HeaderMap,
    body: &[u8],
    peer: SocketAddr,
    audit: &mut Audit,
) -> Result<Response, OAuthError> {
    form_content_type(headers)?;
    let form = request::parse_form(body)?;
    let creds = request::client_credentials(headers.get(header::AUTHORIZATION), &form)?;
    // Only a well-formed client id reaches the log: a client that sends its secret (or anything
    // else) in the client_id field must not get it written down.
    audit.client_id = Some(if index::uid_of(&creds.client_id).is_some() {
        creds.client_id.clone()
    } else {
        "<malformed>".to_owned()
    });
    let token_request = request::token_request(&form)?;
    let (client, kind) = authenticate(svc, &creds, Origin { peer, headers }).await?;
    audit.previous_secret = kind == SecretKind::Previous;
    let grant = authorize(svc, &client);
    audit.client = Some(client.clone());
    let grant = grant?;
    audit.org_code = grant.org_code.clone();
    let granted = claims::narrow(&grant, &client.app, &token_request)?;
    let ring = svc.key_ring();
    let now = Timestamp::now();
    let key = ring.active(now).ok_or_else(OAuthError::overloaded)?;
    let lifetime = lifetime_secs(&client);
    let claims = claims::claims(
        &svc.config.issuer,
        &client.record.client_id,
        grant.org_code.as_deref(),
        &granted,
        now.as_second(),
        lifetime,
        random_id(),
    );
    let token = key
        .sign("at+jwt", &claims)
        .map_err(|_| OAuthError::overloaded())?;
    if kind == SecretKind::Previous {
        svc.metrics.previous_secret.inc();
    }
    let body = TokenResponse {
        access_token: &token,
        token_type: "Bearer",
        expires_in: lifetime,
        scope: claims.scope.as_deref(),
    };
    let mut response = (StatusCode::OK, Json(body)).into_response();
    no_store(&mut response);
    audit.claims = Some(claims);
    Ok(response)
}

async fn token(
    State(svc): State<Arc<TokenService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let mut audit = Audit::default();
    let result = match &body {
        Ok(body) => issue(&svc, &headers, body, peer, &mut audit).await,
        Err(rejection) => Err(OAuthError::unreadable_body(rejection)),
    };
    let outcome = match &result {
        Ok(_) => "issued",
        Err(e) => e.code.as_str(),
    };
    let app = audit.client.as_ref().map(|c| &c.app.metadata);
    let claims = audit.claims.as_ref();
    // Field values are only evaluated when the audit target is enabled.
    tracing::info!(
        target: "m2m_operator::audit",
        endpoint = "token",
        outcome,
        reason = result.as_ref().err().map(|e| e.description.as_str()),
        client_id = audit.client_id.as_deref(),
        org_code = audit.org_code.as_deref(),
        namespace = app.and_then(|m| m.namespace.as_deref()),
        app = app.and_then(|m| m.name.as_deref()),
        scope = claims.and_then(|c| c.scope.as_deref()),
        aud = claims.map(|c| c.aud.values().join(" ")),
        jti = claims.map(|c| c.jti.as_str()),
        previous_secret = audit.previous_secret,
        "token request"
    );
    svc.metrics.observe("token", outcome, started);
    result.unwrap_or_else(IntoResponse::into_response)
}

/// RFC 7662 for M2M apps. An org-scoped caller learns nothing about other organizations'
/// tokens; a token whose client is gone, disabled or suspended is inactive.
async fn introspect_inner(
    svc: &TokenService,
    headers: &HeaderMap,
    body: &[u8],
    peer: SocketAddr,
) -> Result<serde_json::Value, OAuthError> {
    form_content_type(headers)?;
    let form = request::parse_form(body)?;
    let creds = request::client_credentials(headers.get(header::AUTHORIZATION), &form)?;
    let token = request::introspection_token(&form)?;
    let (caller, _) = authenticate(svc, &creds, Origin { peer, headers }).await?;
    let caller_grant = authorize(svc, &caller)?;
    let inactive = serde_json::json!({"active": false});
    let ring = svc.key_ring();
    let Some(payload) = jwt::verify_with(token, |kid| ring.by_kid(kid)) else {
        return Ok(inactive);
    };
    let Ok(claims) = serde_json::from_value::<AccessClaims>(payload) else {
        return Ok(inactive);
    };
    let now = Timestamp::now().as_second();
    if claims.iss != svc.config.issuer || claims.exp <= now || claims.nbf > now + 60 {
        return Ok(inactive);
    }
    if caller_grant.org_code.is_some() && caller_grant.org_code != claims.org_code {
        return Ok(inactive);
    }
    let Some(subject) = index::lookup(
        &svc.cache,
        &svc.parsed,
        &svc.config.operator_namespace,
        &claims.client_id,
    ) else {
        return Ok(inactive);
    };
    if !matches!(
        index::standing(&svc.cache, &subject, &svc.config.global_apps),
        Standing::Allowed(_)
    ) {
        return Ok(inactive);
    }
    let mut out = serde_json::to_value(&claims).unwrap_or_default();
    out["active"] = serde_json::Value::Bool(true);
    out["token_type"] = serde_json::Value::String("Bearer".into());
    Ok(out)
}

async fn introspect(
    State(svc): State<Arc<TokenService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = match &body {
        Ok(body) => introspect_inner(&svc, &headers, body, peer).await,
        Err(rejection) => Err(OAuthError::unreadable_body(rejection)),
    };
    let outcome = match &result {
        Ok(v) if v["active"] == true => "active",
        Ok(_) => "inactive",
        Err(e) => e.code.as_str(),
    };
    svc.metrics.observe("introspect", outcome, started);
    match result {
        Ok(body) => {
            let mut response = (StatusCode::OK, Json(body)).into_response();
            no_store(&mut response);
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn jwks(State(svc): State<Arc<TokenService>>) -> Response {
    let ring = svc.key_ring();
    let keys: Vec<_> = ring.published().map(|k| k.jwk.clone()).collect();
    let mut response = Json(serde_json::json!({"keys": keys})).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// RFC 8414 metadata (also served as the OpenID discovery document).
pub fn metadata_document(config: &TokenConfig) -> serde_json::Value {
    let issuer = config.issuer.trim_end_matches('/');
    let introspection = config.token_url.replace(TOKEN_PATH, INTROSPECT_PATH);
    serde_json::json!({
        "issuer": config.issuer,
        "token_endpoint": config.token_url,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "introspection_endpoint": introspection,
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": [],
        "access_token_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
    })
}

async fn metadata(State(svc): State<Arc<TokenService>>) -> Response {
    Json(metadata_document(&svc.config)).into_response()
}
