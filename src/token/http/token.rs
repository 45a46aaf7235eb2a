//! `POST /oauth2/token`: client credentials in, a signed JWT access token out (RFC 6749
//! §4.4, RFC 9068), with one audit line per request.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    Json,
    extract::{ConnectInfo, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use k8s_openapi::jiff::Timestamp;

use super::{
    authorize,
    error::{OAuthError, no_store},
    form_content_type, request,
};
use crate::{
    credentials::record::SecretKind,
    token::{
        TokenService,
        authn::{Method, Origin, authenticate},
        claims::{self, AccessClaims},
        clients::{self, KnownClient},
        quota,
    },
};

/// What the audit line of one request says. Never a secret, a hash or a token.
#[derive(Default)]
struct Audit {
    client_id: Option<String>,
    /// The authenticated client (its namespace and name).
    client: Option<KnownClient>,
    org_code: Option<String>,
    /// The claims of the issued token (scope, audiences, jti).
    claims: Option<AccessClaims>,
    previous_secret: bool,
    /// The quotas the request found used up, as `app-minute,organization-day`.
    quota_exceeded: Option<String>,
    /// How the client authenticated.
    method: Option<Method>,
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

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
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
    let auth = request::client_auth(headers.get(header::AUTHORIZATION), &form)?;
    // Only a well-formed client id reaches the log: a client that sends its secret (or anything
    // else) in the client_id field must not get it written down.
    audit.client_id = auth.client_id().map(|id| {
        if clients::uid_of(id).is_some() {
            id.to_owned()
        } else {
            "<malformed>".to_owned()
        }
    });
    let token_request = request::token_request(&form)?;
    let (client, method) = authenticate(svc, &auth, Origin { peer, headers }).await?;
    audit.method = Some(method);
    let kind = match method {
        Method::Secret { kind, .. } => Some(kind),
        Method::ServiceAccountToken | Method::PrivateKeyJwt => None,
    };
    audit.previous_secret = kind == Some(SecretKind::Previous);
    if audit.client_id.is_none() {
        audit.client_id = Some(client.record.client_id.clone());
    }
    let grant = authorize(svc, &client);
    audit.client = Some(client.clone());
    let grant = grant?;
    audit.org_code = grant.org_code.clone();
    let granted = claims::narrow(&grant, &client.app, &token_request)?;
    let ring = svc.key_ring();
    let now = Timestamp::now();
    let key = ring.active(now).ok_or_else(OAuthError::overloaded)?;
    // From here on nothing awaits: the token counted is the token handed out (or refunded).
    let admitted = admit(svc, &client, audit)?;
    let lifetime = client.app.token_lifetime_secs();
    let claims = claims::claims(
        &svc.config.issuer,
        &client.record.client_id,
        grant.org_code.as_deref(),
        &granted,
        now.as_second(),
        lifetime,
        random_id(),
    );
    let token = match key.sign("at+jwt", &claims) {
        Ok(token) => token,
        Err(_) => {
            if let Some(admitted) = admitted {
                svc.quotas.refund(admitted);
            }
            return Err(OAuthError::overloaded());
        }
    };
    if kind == Some(SecretKind::Previous) {
        svc.metrics.previous_secret.inc();
        svc.usage.previous_secret_used(
            &client.record.app.uid,
            client.record.revision,
            quota::now_unix(),
        );
    }
    svc.metrics.issued_by_method(method.as_str());
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

/// Counts the token against the quotas of the client's app and organization, or refuses it with
/// 429 when an enforced one is used up. `None`: no quota applies.
fn admit(
    svc: &TokenService,
    client: &KnownClient,
    audit: &mut Audit,
) -> Result<Option<quota::Admitted>, OAuthError> {
    let subject = quota::Subject::of(&client.app, client.org.as_deref());
    if subject.is_empty() {
        return Ok(None);
    }
    let now = quota::now_unix();
    let outcome = svc.quotas.admit(&subject, now);
    let exceeded = match &outcome {
        Ok(admitted) => &admitted.observed,
        Err((_, exceeded)) => exceeded,
    };
    if !exceeded.is_empty() {
        svc.metrics.quota_exceeded(exceeded);
        svc.usage
            .quota_exceeded(&client.app, client.org.as_deref(), exceeded, now);
        audit.quota_exceeded = Some(
            exceeded
                .iter()
                .map(|e| format!("{}-{}", e.scope.as_str(), e.period.as_str()))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    match outcome {
        Ok(admitted) => Ok(Some(admitted)),
        Err((retry_after, exceeded)) => {
            let first = exceeded
                .iter()
                .find(|e| e.mode == crate::api::QuotaMode::Enforce)
                .or(exceeded.first());
            let what = first.map_or_else(String::new, |e| {
                format!(
                    "the {} quota of {} tokens per {} is used up",
                    e.scope.as_str(),
                    e.limit,
                    e.period.as_str()
                )
            });
            Err(OAuthError::quota_exceeded(
                retry_after,
                format!("{what}; retry after {retry_after}s"),
            ))
        }
    }
}

pub async fn handle(
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
        Err(e) => e.outcome(),
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
        quota_exceeded = audit.quota_exceeded.as_deref(),
        auth_method = audit.method.map(Method::as_str),
        "token request"
    );
    svc.metrics.observe("token", outcome, started);
    result.unwrap_or_else(IntoResponse::into_response)
}
