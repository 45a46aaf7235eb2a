//! `GET /.well-known/jwks.json` and the RFC 8414 metadata (also served as the OpenID discovery
//! document).

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

use super::{INTROSPECT_PATH, TOKEN_PATH};
use crate::token::{TokenConfig, TokenService};

pub async fn jwks(State(svc): State<Arc<TokenService>>) -> Response {
    let ring = svc.key_ring();
    let keys: Vec<_> = ring.published().map(|k| k.jwk.clone()).collect();
    let mut response = Json(serde_json::json!({"keys": keys})).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// RFC 8414 metadata (also served as the OpenID discovery document). ServiceAccount tokens are
/// sent exactly as `private_key_jwt` assertions are (`client_assertion_type` jwt-bearer): no
/// registered method name describes a token signed by the cluster's key, so `private_key_jwt`
/// announces both (docs/token.md).
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
        "token_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": [],
        "access_token_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
    })
}

pub async fn metadata(State(svc): State<Arc<TokenService>>) -> Response {
    Json(metadata_document(&svc.config)).into_response()
}
