//! RFC 7523 client assertions, verified with the `jsonwebtoken` crate (pure: keys and clock
//! are given). Every key is pinned to the one algorithm its type allows, so `none` (not an
//! algorithm `jsonwebtoken` knows) and `HS*` (no key here is symmetric) can never verify.
//!
//! This module holds the ServiceAccount-token check: signature by the cluster's
//! ServiceAccount issuer, `iss`, `aud` = the operator's issuer, `exp`/`nbf`/`iat` with a small
//! skew, a bounded remaining lifetime, and the `kubernetes.io` claims.

use std::collections::HashMap;

use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk},
};
use serde::Deserialize;

/// `client_assertion_type` of an RFC 7523 JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const SKEW_SECS: i64 = 30;

/// A verification key with the one algorithm it may verify.
#[derive(Clone)]
pub struct PinnedKey {
    pub key: DecodingKey,
    pub alg: Algorithm,
}

impl PinnedKey {
    /// The key of a JWK: RSA verifies RS256, EC P-256 ES256 (P-384 ES384), OKP Ed25519 EdDSA;
    /// anything else (symmetric `oct`, other curves, a declared `alg` that differs) is `None`.
    pub fn from_jwk(jwk: &Jwk) -> Option<Self> {
        let alg = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                Algorithm::EdDSA
            }
            _ => return None,
        };
        if let Some(declared) = jwk.common.key_algorithm
            && format!("{declared:?}") != format!("{alg:?}")
        {
            return None;
        }
        Some(Self {
            key: DecodingKey::from_jwk(jwk).ok()?,
            alg,
        })
    }
}

/// Keys by `kid`.
pub type KeySet = HashMap<String, PinnedKey>;

/// The keys of a JWK Set that can verify, by `kid` (keys without one are skipped).
pub fn key_set(jwks: &jsonwebtoken::jwk::JwkSet) -> KeySet {
    jwks.keys
        .iter()
        .filter_map(|jwk| Some((jwk.common.key_id.clone()?, PinnedKey::from_jwk(jwk)?)))
        .collect()
}

/// Why an assertion was refused (for the audit line; never the assertion itself).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the assertion is not a signed JWT with a kid")]
    Malformed,
    #[error("the assertion's key is not one of its issuer's")]
    UnknownKey,
    #[error("the assertion's signature, algorithm, issuer or audience is wrong")]
    Invalid,
    #[error("the assertion has expired")]
    Expired,
    #[error("the assertion is not valid yet")]
    NotYetValid,
    #[error("the assertion lives longer than accepted")]
    TooLong,
    #[error("the assertion is not a ServiceAccount token")]
    NotServiceAccount,
    #[error("the API server did not confirm the ServiceAccount token")]
    NotReviewed,
    #[error("no app accepts this assertion")]
    NoApp,
    #[error("the assertion was used before (its jti)")]
    Replayed,
}

/// What a ServiceAccount token must be, besides signed by one of the issuer's keys.
#[derive(Clone, Debug)]
pub struct SaExpectations<'a> {
    /// The cluster's ServiceAccount issuer (`iss`).
    pub issuer: &'a str,
    /// The audience the token must carry: the operator's issuer.
    pub audience: &'a str,
    /// The longest accepted remaining lifetime (`exp - now`), in seconds.
    pub max_lifetime_secs: i64,
}

/// An object reference of the `kubernetes.io` claims.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// Who a verified ServiceAccount token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaIdentity {
    pub namespace: String,
    pub service_account: ObjectRef,
    /// The Pod the token is bound to, if any.
    pub pod: Option<ObjectRef>,
    pub exp: i64,
}

impl SaIdentity {
    /// The user name the API server gives this ServiceAccount.
    pub fn username(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account.name
        )
    }
}

#[derive(Deserialize)]
struct KubernetesClaims {
    namespace: String,
    serviceaccount: ObjectRef,
    #[serde(default)]
    pod: Option<ObjectRef>,
}

#[derive(Deserialize)]
struct SaClaims {
    sub: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(rename = "kubernetes.io")]
    kubernetes: Option<KubernetesClaims>,
}

/// The `kid` of a JWT's header, if it parses as one `jsonwebtoken` accepts.
pub fn kid(token: &str) -> Result<String, Refused> {
    jsonwebtoken::decode_header(token)
        .ok()
        .and_then(|h| h.kid)
        .ok_or(Refused::Malformed)
}

/// Verifies the signature (with the key's pinned algorithm), `iss` and `aud` of `token`;
/// returns its claims. The caller checks the times.
pub fn verify_signed<T: serde::de::DeserializeOwned>(
    token: &str,
    keys: &KeySet,
    issuer: Option<&str>,
    audiences: &[&str],
) -> Result<T, Refused> {
    let kid = kid(token)?;
    let pinned = keys.get(&kid).ok_or(Refused::UnknownKey)?;
    let mut validation = Validation::new(pinned.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims = ["exp", "aud"].iter().map(|s| (*s).to_owned()).collect();
    if let Some(issuer) = issuer {
        validation.set_issuer(&[issuer]);
        validation.required_spec_claims.insert("iss".to_owned());
    }
    validation.set_audience(audiences);
    jsonwebtoken::decode::<T>(token, &pinned.key, &validation)
        .map(|d| d.claims)
        .map_err(|_| Refused::Invalid)
}

/// Checks `exp`, `nbf` and `iat` against `now` with [`SKEW_SECS`], and that the token expires
/// at most `max_lifetime_secs` from now.
pub fn check_times(
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    now: i64,
    max_lifetime_secs: i64,
) -> Result<(), Refused> {
    if exp + SKEW_SECS <= now {
        return Err(Refused::Expired);
    }
    if nbf.into_iter().chain(iat).any(|t| t > now + SKEW_SECS) {
        return Err(Refused::NotYetValid);
    }
    if exp - now > max_lifetime_secs + SKEW_SECS {
        return Err(Refused::TooLong);
    }
    Ok(())
}

/// Verifies a ServiceAccount token against the issuer's keys at `now` (Unix seconds).
pub fn verify_service_account(
    token: &str,
    keys: &KeySet,
    expect: &SaExpectations<'_>,
    now: i64,
) -> Result<SaIdentity, Refused> {
    let claims: SaClaims = verify_signed(token, keys, Some(expect.issuer), &[expect.audience])?;
    check_times(
        claims.exp,
        claims.nbf,
        claims.iat,
        now,
        expect.max_lifetime_secs,
    )?;
    let k8s = claims.kubernetes.ok_or(Refused::NotServiceAccount)?;
    let identity = SaIdentity {
        namespace: k8s.namespace,
        service_account: k8s.serviceaccount,
        pod: k8s.pod,
        exp: claims.exp,
    };
    // The subject must be the ServiceAccount the claims name.
    if claims.sub != identity.username() {
        return Err(Refused::NotServiceAccount);
    }
    Ok(identity)
}

#[cfg(test)]
pub(crate) mod tests;
