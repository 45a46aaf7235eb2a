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

pub mod source;
pub mod throttle;
pub mod verify;

use self::{source::SourceKey, throttle::Throttle, verify::Busy};
use super::{
    TokenService,
    clients::{self, KnownClient},
    http::{error::OAuthError, request::ClientCredentials},
};
use crate::credentials::record::SecretKind;

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
    client: &'a str,
    source: SourceKey,
    /// End without a failure: the secret verified, or no check ran (the pool was full).
    forgive: bool,
}

impl<'a> Attempt<'a> {
    /// Registers an attempt unless the client or the source is throttled.
    fn begin(
        svc: &'a TokenService,
        client: &'a str,
        source: SourceKey,
        now: Instant,
    ) -> Result<Self, OAuthError> {
        let by_client = blocked(&svc.client_throttle, &client.to_owned(), now);
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
        if let Ok(mut t) = self.svc.client_throttle.lock() {
            t.fail(&self.client.to_owned(), now);
        }
        if let Ok(mut t) = self.svc.source_throttle.lock() {
            t.fail(&self.source, now);
        }
    }
}

/// Authenticates the client: the fast path first, then argon2id under the throttles.
pub async fn authenticate(
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
    let mut attempt = Attempt::begin(svc, &creds.client_id, source, Instant::now())?;
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
