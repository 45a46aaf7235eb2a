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
mod by_assertion;
pub mod client_jwt;
pub mod service_account;
pub mod source;
pub mod throttle;
pub mod verify;

use self::{source::SourceKey, throttle::Throttle, verify::Busy};
use super::{
    TokenService,
    clients::{self, KnownClient},
    http::{
        error::OAuthError,
        request::{ClientAuth, ClientCredentials},
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
    /// A JWT signed with a key of its app's `jwks` (`private_key_jwt`).
    PrivateKeyJwt,
}

impl Method {
    /// The value of the audit line's `auth_method` and the metric's `method` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Secret { basic: true, .. } => "client_secret_basic",
            Method::Secret { basic: false, .. } => "client_secret_post",
            Method::ServiceAccountToken => "service_account_token",
            Method::PrivateKeyJwt => "private_key_jwt",
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
        ClientAuth::Assertion(assertion) => {
            by_assertion::authenticate(svc, assertion, origin).await
        }
    }
}

/// Authenticates a secret: the fast path first, then argon2id under the throttles.
async fn authenticate_secret(
    svc: &TokenService,
    creds: &ClientCredentials,
    origin: Origin<'_>,
) -> Result<(KnownClient, SecretKind), OAuthError> {
    let now = Timestamp::now();
    let Some(client) = clients::lookup(&svc.cache, &creds.client_id) else {
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
