//! The HTTP side of the token endpoint: its routes, and what the token and introspection
//! handlers share (the form check, the authorization of an authenticated client).

pub mod discovery;
pub mod error;
pub mod introspect;
pub mod request;
pub mod token;

use std::sync::Arc;

use axum::{
    Router,
    http::{HeaderMap, header},
    routing::{get, post},
};

use self::error::{ErrorCode, OAuthError};
use super::{
    TokenService,
    clients::{KnownClient, Standing},
};
use crate::tenancy::Grant;

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
        .route(TOKEN_PATH, post(token::handle))
        .route(INTROSPECT_PATH, post(introspect::handle))
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::metadata),
        )
        .with_state(service)
}

pub(crate) fn form_content_type(headers: &HeaderMap) -> Result<(), OAuthError> {
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
pub(crate) fn authorize(svc: &TokenService, client: &KnownClient) -> Result<Grant, OAuthError> {
    match super::clients::standing(&svc.cache, client, &svc.config.global_apps) {
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
