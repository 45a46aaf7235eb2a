//! `POST /oauth2/introspect` (RFC 7662) for M2M apps.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    Json,
    extract::{ConnectInfo, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use k8s_openapi::jiff::Timestamp;

use super::{
    authorize,
    error::{OAuthError, no_store},
    form_content_type, request,
};
use crate::token::{
    TokenService,
    authn::{Origin, authenticate},
    claims::AccessClaims,
    clients::{self, Standing},
    jwt,
};

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
    let creds = request::ClientAuth::Secret(creds);
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
    let Some(subject) = clients::lookup(&svc.cache, &claims.client_id) else {
        return Ok(inactive);
    };
    if !matches!(
        clients::standing(&svc.cache, &subject, &svc.config.global_apps),
        Standing::Allowed(_)
    ) {
        return Ok(inactive);
    }
    let mut out = serde_json::to_value(&claims).unwrap_or_default();
    out["active"] = serde_json::Value::Bool(true);
    out["token_type"] = serde_json::Value::String("Bearer".into());
    Ok(out)
}

pub async fn handle(
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
        Err(e) => e.outcome(),
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
