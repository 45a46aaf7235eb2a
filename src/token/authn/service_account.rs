//! ServiceAccount tokens as client assertions: offline verification against the cluster's
//! issuer ([`assertion::verify_service_account`]), then, on first sight of a token whose
//! ServiceAccount some app accepts (only then: a tenant minting tokens for other accounts must
//! not buy API calls and memory with them), a TokenReview, so a token whose ServiceAccount was deleted or recreated (another UID) or whose
//! Pod is gone is refused. A reviewed token is remembered by its SHA-256 for at most the review
//! TTL (`--token-review-ttl`, default 60 s) and never past its `exp`: that TTL bounds how long a
//! token outlives its Pod or ServiceAccount. The memory holds digests, never a token, and only
//! tokens that verified (an attacker cannot fill it without valid tokens); it is bounded.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::assertion::{self, Refused, SaExpectations, SaIdentity};
use crate::token::sa_issuer::SaIssuer;

/// Most reviewed tokens remembered at once; beyond, new ones are reviewed on every request.
const MAX_REVIEWED: usize = 50_000;

/// Settings of ServiceAccount-token authentication.
#[derive(Clone, Debug)]
pub struct SaSettings {
    /// The audience tokens must carry: the operator's issuer.
    pub audience: String,
    /// The longest remaining lifetime a token may have.
    pub max_lifetime: Duration,
    /// How long a TokenReview's answer is trusted.
    pub review_ttl: Duration,
}

struct Reviewed {
    identity: SaIdentity,
    /// Unix seconds until which the review holds.
    until: i64,
}

/// What an authentication found out.
pub enum Outcome {
    /// The token is good: from memory (`reviewed: false`) or just reviewed.
    Verified {
        identity: SaIdentity,
        reviewed: bool,
    },
    Refused(Refused),
    /// The API server could not be asked; the client should retry.
    Unavailable,
}

pub struct ServiceAccounts {
    issuer: Arc<SaIssuer>,
    settings: SaSettings,
    reviewed: Mutex<HashMap<[u8; 32], Reviewed>>,
}

fn digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl ServiceAccounts {
    pub fn new(issuer: Arc<SaIssuer>, settings: SaSettings) -> Self {
        Self {
            issuer,
            settings,
            reviewed: Mutex::new(HashMap::new()),
        }
    }

    /// The identity of a token reviewed less than the TTL ago and not expired (the fast path:
    /// no signature check, no API call; the digest names exactly this token).
    pub fn remembered(&self, token: &str, now: i64) -> Option<SaIdentity> {
        let key = digest(token);
        let map = self.reviewed.lock().ok()?;
        map.get(&key)
            .filter(|r| r.until > now && r.identity.exp + assertion::SKEW_SECS > now)
            .map(|r| r.identity.clone())
    }

    /// Asks the API server about `token`, whose signature and claims [`Self::verify_offline`]
    /// found good as `identity`, and remembers a token it confirms. Callers first check that
    /// some app accepts the identity: a review costs an API call and a slot of the memory.
    pub async fn review(&self, token: &str, identity: SaIdentity, now: i64) -> Outcome {
        match self.issuer.review(token, &self.settings.audience).await {
            Err(e) => {
                tracing::warn!(error = %e, "TokenReview failed");
                Outcome::Unavailable
            }
            Ok(Some((user, uid)))
                if user == identity.username() && uid == identity.service_account.uid =>
            {
                self.remember(token, &identity, now);
                Outcome::Verified {
                    identity,
                    reviewed: true,
                }
            }
            Ok(_) => Outcome::Refused(Refused::NotReviewed),
        }
    }

    /// The token's identity, if the cluster's issuer signed it for the operator's audience,
    /// within its lifetime limit (no API call unless the signing key is new).
    pub async fn verify_offline(&self, token: &str, now: i64) -> Result<SaIdentity, Refused> {
        let kid = assertion::kid(token)?;
        let keys = self
            .issuer
            .keys_for(&kid)
            .await
            .map_err(|_| Refused::UnknownKey)?;
        let expect = SaExpectations {
            issuer: &keys.issuer,
            audience: &self.settings.audience,
            max_lifetime_secs: i64::try_from(self.settings.max_lifetime.as_secs())
                .unwrap_or(i64::MAX / 2),
        };
        assertion::verify_service_account(token, &keys.keys, &expect, now)
    }

    fn remember(&self, token: &str, identity: &SaIdentity, now: i64) {
        let ttl = i64::try_from(self.settings.review_ttl.as_secs()).unwrap_or(60);
        let until = (now + ttl).min(identity.exp + assertion::SKEW_SECS);
        let Ok(mut map) = self.reviewed.lock() else {
            return;
        };
        if map.len() >= MAX_REVIEWED {
            map.retain(|_, r| r.until > now);
        }
        if map.len() < MAX_REVIEWED {
            map.insert(
                digest(token),
                Reviewed {
                    identity: identity.clone(),
                    until,
                },
            );
        }
    }
}
