//! Client authentication: the remembered-secret fast path first (never throttled, no lock but
//! the proof map's), then, under the per-client and per-source throttles, argon2id on the pool.
//!
//! Unknown client ids are refused without argon2 work and counted nowhere: they cost nothing,
//! so they must not spend the per-source budget that guards the argon2id path of real clients
//! (behind a proxy, 100 made-up ids would otherwise lock out every client not yet remembered).

use std::{
    net::{IpAddr, SocketAddr},
    sync::Mutex,
    time::Instant,
};

use axum::http::HeaderMap;
use k8s_openapi::jiff::Timestamp;

pub mod assertion;
pub mod service_account;
pub mod source;
pub mod throttle;
pub mod verify;

use self::{
    assertion::Refused, service_account::Outcome, source::SourceKey, throttle::Throttle,
    verify::Busy,
};
use super::{
    TokenService,
    clients::{self, KnownClient, NoApp},
    http::{
        error::OAuthError,
        request::{Assertion, ClientAuth, ClientCredentials},
    },
};
use crate::credentials::record::SecretKind;

/// How a client authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Its client secret (`kind`: which of its recorded secrets), with HTTP Basic or in the body.
    Secret { kind: SecretKind, basic: bool },
    /// A projected ServiceAccount token as its client assertion.
    ServiceAccountToken,
}

impl Method {
    /// The value of the audit line's `auth_method` and the metric's `method` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Secret { basic: true, .. } => "client_secret_basic",
            Method::Secret { basic: false, .. } => "client_secret_post",
            Method::ServiceAccountToken => "service_account_token",
        }
    }
}

/// Where a request came from: the TCP peer and the headers a trusted proxy may have written.
/// Only resolved to an address when a throttle needs it.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    pub peer: SocketAddr,
    pub headers: &'a HeaderMap,
}

impl Origin<'_> {
    fn source(&self, svc: &TokenService) -> IpAddr {
        svc.config
            .trusted_proxies
            .client(self.peer.ip(), self.headers)
    }
}

/// An attempt on the argon2id path, registered before the work. Dropped without being
/// forgiven (a wrong secret, or the request dropped mid-verification), it counts as a failure
/// of its client and its source.
struct Attempt<'a> {
    svc: &'a TokenService,
    /// `None`: no client named (an assertion without `client_id`): the source alone counts.
    client: Option<&'a str>,
    source: SourceKey,
    /// End without a failure: the secret verified, or no check ran (the pool was full).
    forgive: bool,
}

impl<'a> Attempt<'a> {
    /// Registers an attempt unless the client or the source is throttled.
    fn begin(
        svc: &'a TokenService,
        client: Option<&'a str>,
        source: SourceKey,
        now: Instant,
    ) -> Result<Self, OAuthError> {
        let by_client = client.and_then(|c| blocked(&svc.client_throttle, &c.to_owned(), now));
        let by_source = blocked(&svc.source_throttle, &source, now);
        if let Some(wait) = by_client.max(by_source) {
            return Err(OAuthError::throttled(wait.as_secs() + 1));
        }
        Ok(Self {
            svc,
            client,
            source,
            forgive: false,
        })
    }
}

/// How long `key` is throttled for, if it is; a poisoned lock throttles nobody.
fn blocked<K: std::hash::Hash + Eq + Clone>(
    throttle: &Mutex<Throttle<K>>,
    key: &K,
    now: Instant,
) -> Option<std::time::Duration> {
    throttle.lock().ok().and_then(|t| t.blocked(key, now))
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.forgive {
            return;
        }
        let now = Instant::now();
        if let Some(client) = self.client
            && let Ok(mut t) = self.svc.client_throttle.lock()
        {
            t.fail(&client.to_owned(), now);
        }
        if let Ok(mut t) = self.svc.source_throttle.lock() {
            t.fail(&self.source, now);
        }
    }
}

/// Authenticates the client of a token request.
pub async fn authenticate(
    svc: &TokenService,
    auth: &ClientAuth,
    origin: Origin<'_>,
) -> Result<(KnownClient, Method), OAuthError> {
    match auth {
        ClientAuth::Secret(creds) => {
            authenticate_secret(svc, creds, origin)
                .await
                .map(|(client, kind)| {
                    (
                        client,
                        Method::Secret {
                            kind,
                            basic: creds.basic,
                        },
                    )
                })
        }
        ClientAuth::Assertion(assertion) => authenticate_assertion(svc, assertion, origin).await,
    }
}

/// `invalid_client` saying why (a reason a client can act on; never the assertion).
fn refused(why: Refused) -> OAuthError {
    OAuthError {
        description: format!("client authentication failed: {why}"),
        ..OAuthError::invalid_client(false)
    }
}

/// A ServiceAccount token as client assertion: remembered (reviewed less than the TTL ago),
/// or verified and reviewed under the throttles; then the app it may act as.
async fn authenticate_assertion(
    svc: &TokenService,
    assertion: &Assertion,
    origin: Origin<'_>,
) -> Result<(KnownClient, Method), OAuthError> {
    let Some(accounts) = &svc.service_accounts else {
        return Err(refused(Refused::NoApp));
    };
    let now = Timestamp::now().as_second();
    let identity = match accounts.remembered(&assertion.jwt, now) {
        Some(identity) => identity,
        None => {
            let source = SourceKey::of(origin.source(svc));
            let named = assertion.client_id.as_deref();
            let mut attempt = Attempt::begin(svc, named, source, Instant::now())?;
            match accounts.verify(&assertion.jwt, now).await {
                Outcome::Verified { identity, .. } => {
                    attempt.forgive = true;
                    identity
                }
                Outcome::Refused(why) => return Err(refused(why)),
                Outcome::Unavailable => {
                    attempt.forgive = true;
                    return Err(OAuthError::overloaded());
                }
            }
        }
    };
    match clients::for_service_account(
        &svc.cache,
        &svc.parsed,
        &svc.config.operator_namespace,
        &identity,
        assertion.client_id.as_deref(),
    ) {
        Ok(client) => Ok((client, Method::ServiceAccountToken)),
        Err(NoApp::None) => Err(refused(Refused::NoApp)),
        Err(NoApp::Ambiguous) => Err(OAuthError::invalid_request(
            "several apps accept this ServiceAccount: send client_id",
        )),
    }
}

/// Authenticates a secret: the fast path first, then argon2id under the throttles.
async fn authenticate_secret(
    svc: &TokenService,
    creds: &ClientCredentials,
    origin: Origin<'_>,
) -> Result<(KnownClient, SecretKind), OAuthError> {
    let now = Timestamp::now();
    let Some(client) = clients::lookup(
        &svc.cache,
        &svc.parsed,
        &svc.config.operator_namespace,
        &creds.client_id,
    ) else {
        return Err(OAuthError::invalid_client(creds.basic));
    };
    if let Some(kind) =
        svc.verifier
            .remembered(&creds.client_id, &creds.secret, &client.record, now)
    {
        return Ok((client, kind));
    }
    // The slow path: registered before the work, a failure unless it verifies.
    let source = SourceKey::of(origin.source(svc));
    let mut attempt = Attempt::begin(svc, Some(&creds.client_id), source, Instant::now())?;
    let checked = svc
        .verifier
        .verify(&creds.client_id, &creds.secret, &client.record, now)
        .await;
    match checked {
        Err(Busy) => {
            attempt.forgive = true;
            Err(OAuthError::overloaded())
        }
        Ok(Some(kind)) => {
            attempt.forgive = true;
            Ok((client, kind))
        }
        Ok(None) => Err(OAuthError::invalid_client(creds.basic)),
    }
}
