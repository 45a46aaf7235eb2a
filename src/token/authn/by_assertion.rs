//! Client assertions (RFC 7523): a ServiceAccount token, or a JWT the client signed
//! (`private_key_jwt`), told apart by their `iss` (a client id signs its own). Failures count
//! against the throttles like wrong secrets; a remembered ServiceAccount token is never
//! throttled.

use std::time::Instant;

use k8s_openapi::jiff::Timestamp;

use super::{
    Attempt, Method, Origin, assertion::Refused, client_jwt, service_account::Outcome,
    source::SourceKey,
};
use crate::{
    api::AuthMethod,
    token::{
        TokenService,
        clients::{self, KnownClient, NoApp},
        http::{error::OAuthError, request::Assertion},
    },
};

/// Authenticates the client of an assertion.
pub(super) async fn authenticate(
    svc: &TokenService,
    assertion: &Assertion,
    origin: Origin<'_>,
) -> Result<(KnownClient, Method), OAuthError> {
    match client_jwt::unverified_issuer(&assertion.jwt).filter(|i| clients::uid_of(i).is_some()) {
        Some(client_id) => private_key_jwt(svc, assertion, &client_id, origin).await,
        None => service_account_token(svc, assertion, origin).await,
    }
}

/// `private_key_jwt`: the client named by `iss` (and `client_id`, if sent), one of its app's
/// keys, a `jti` not seen before.
async fn private_key_jwt(
    svc: &TokenService,
    assertion: &Assertion,
    client_id: &str,
    origin: Origin<'_>,
) -> Result<(KnownClient, Method), OAuthError> {
    if assertion
        .client_id
        .as_deref()
        .is_some_and(|id| id != client_id)
    {
        return Err(refused(Refused::Invalid));
    }
    let client = clients::lookup(&svc.cache, client_id)
        .filter(|c| c.app.accepts(AuthMethod::PrivateKeyJwt))
        .ok_or_else(|| refused(Refused::NoApp))?;
    let keys = client
        .app
        .spec
        .client_authentication
        .as_ref()
        .and_then(|a| a.jwks.as_ref())
        .map(client_jwt::keys_of)
        .unwrap_or_default();
    let source = SourceKey::of(origin.source(svc));
    let mut attempt = Attempt::begin(svc, Some(client_id), source, Instant::now())?;
    let now = Timestamp::now().as_second();
    let audiences = [svc.config.token_url.as_str(), svc.config.issuer.as_str()];
    let verified =
        client_jwt::verify(&assertion.jwt, client_id, &keys, &audiences, now).map_err(refused)?;
    svc.replays
        .first_use(client_id, &verified, now)
        .map_err(refused)?;
    attempt.forgive = true;
    Ok((client, Method::PrivateKeyJwt))
}

/// `invalid_client` saying why (a reason a client can act on; never the assertion).
fn refused(why: Refused) -> OAuthError {
    OAuthError {
        description: format!("client authentication failed: {why}"),
        ..OAuthError::invalid_client(false)
    }
}

/// A ServiceAccount token as client assertion: remembered (reviewed less than the TTL ago),
/// or verified offline, matched to the app it may act as, and only then reviewed, under the
/// throttles.
async fn service_account_token(
    svc: &TokenService,
    assertion: &Assertion,
    origin: Origin<'_>,
) -> Result<(KnownClient, Method), OAuthError> {
    let Some(accounts) = &svc.service_accounts else {
        return Err(refused(Refused::NoApp));
    };
    let now = Timestamp::now().as_second();
    if let Some(identity) = accounts.remembered(&assertion.jwt, now) {
        return app_of(svc, assertion, &identity).map(|c| (c, Method::ServiceAccountToken));
    }
    let source = SourceKey::of(origin.source(svc));
    let named = assertion.client_id.as_deref();
    let mut attempt = Attempt::begin(svc, named, source, Instant::now())?;
    let identity = accounts
        .verify_offline(&assertion.jwt, now)
        .await
        .map_err(refused)?;
    // No TokenReview (an API call, a slot in the memory) for a ServiceAccount no app accepts:
    // its tokens are refused for a signature check, and cost its source nothing more (like an
    // unknown client id), since nothing expensive ran.
    let client = match app_of(svc, assertion, &identity) {
        Ok(client) => client,
        Err(e) => {
            attempt.forgive = true;
            return Err(e);
        }
    };
    match accounts.review(&assertion.jwt, identity, now).await {
        Outcome::Verified { .. } => {
            attempt.forgive = true;
            Ok((client, Method::ServiceAccountToken))
        }
        Outcome::Refused(why) => Err(refused(why)),
        Outcome::Unavailable => {
            attempt.forgive = true;
            Err(OAuthError::overloaded())
        }
    }
}

/// The app a verified ServiceAccount identity acts as.
fn app_of(
    svc: &TokenService,
    assertion: &Assertion,
    identity: &super::assertion::SaIdentity,
) -> Result<KnownClient, OAuthError> {
    match clients::for_service_account(&svc.cache, identity, assertion.client_id.as_deref()) {
        Ok(client) => Ok(client),
        Err(NoApp::None) => Err(refused(Refused::NoApp)),
        Err(NoApp::Ambiguous) => Err(OAuthError::invalid_request(
            "several apps accept this ServiceAccount: send client_id",
        )),
    }
}
