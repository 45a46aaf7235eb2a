//! `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9): a JWT the client signed with a
//! key of its app's `spec.clientAuthentication.jwks`. Verified with `jsonwebtoken`, the key
//! pinned to its type's one algorithm (ES256, RS256, EdDSA); `iss` = `sub` = the client id,
//! `aud` = the token endpoint URL or the issuer, `exp` at most [`MAX_LIFETIME_SECS`] ahead, and a
//! `jti` not seen before on this replica ([`Replays`]).

use std::{collections::HashMap, sync::Mutex};

use serde::Deserialize;

use super::assertion::{self, KeySet, Refused};
use crate::api::Jwks;

/// The longest an assertion may live from now, in seconds.
pub const MAX_LIFETIME_SECS: i64 = 300;
/// Most `jti`s remembered at once; beyond, new assertions are refused until some expire.
const MAX_REMEMBERED: usize = 100_000;

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

/// The unverified `iss` of a JWT (to route it to its verification, nothing else).
pub fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Peek {
        iss: Option<String>,
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Peek>(token)
        .ok()?
        .iss
}

/// The app's keys, each pinned to its algorithm.
pub fn keys_of(jwks: &Jwks) -> KeySet {
    serde_json::to_value(jwks)
        .and_then(serde_json::from_value::<jsonwebtoken::jwk::JwkSet>)
        .map(|set| assertion::key_set(&set))
        .unwrap_or_default()
}

/// A verified assertion: its `jti` and `exp`, for the replay check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub jti: String,
    pub exp: i64,
}

/// Verifies `token` as an assertion of `client_id` against `keys` at `now`.
pub fn verify(
    token: &str,
    client_id: &str,
    keys: &KeySet,
    audiences: &[&str],
    now: i64,
) -> Result<Verified, Refused> {
    let claims: Claims = assertion::verify_signed(token, keys, Some(client_id), audiences)?;
    if claims.sub != client_id {
        return Err(Refused::Invalid);
    }
    assertion::check_times(claims.exp, claims.nbf, claims.iat, now, MAX_LIFETIME_SECS)?;
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(Refused::Malformed)?;
    Ok(Verified {
        jti,
        exp: claims.exp,
    })
}

/// The `jti`s of accepted assertions, per client, until they expire. Per replica: an
/// assertion replayed to another replica within its lifetime (at most five minutes) is not
/// caught there (docs/security.md).
#[derive(Default)]
pub struct Replays(Mutex<HashMap<(String, String), i64>>);

impl Replays {
    /// Records `verified` for `client_id`; `Err` if it was seen (a replay) or the memory is
    /// full of unexpired ones (refusing is safer than forgetting).
    pub fn first_use(&self, client_id: &str, verified: &Verified, now: i64) -> Result<(), Refused> {
        let Ok(mut seen) = self.0.lock() else {
            return Err(Refused::Replayed);
        };
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, exp| *exp + assertion::SKEW_SECS > now);
            if seen.len() >= MAX_REMEMBERED {
                return Err(Refused::Replayed);
            }
        }
        let key = (client_id.to_owned(), verified.jti.clone());
        match seen.get(&key) {
            Some(exp) if *exp + assertion::SKEW_SECS > now => Err(Refused::Replayed),
            _ => {
                seen.insert(key, verified.exp);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
