//! JWT signing with keys parsed once (aws-lc-rs, the same crypto backend as the TLS stack),
//! public JWKs and RFC 7638 thumbprints.
//!
//! The signer is hand-assembled because a JWT is three base64url parts and a signature, and
//! general JWT crates re-parse the PKCS#8 key on every signature; the token endpoint signs every
//! request, so the key is parsed once per key-set change instead. Verification (in tests and by
//! users) is done with independent libraries against the published JWKS.

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    signature::{
        self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
    },
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

/// A signing algorithm the token endpoint supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Algorithm {
    #[value(name = "ES256")]
    ES256,
    #[value(name = "RS256")]
    RS256,
    #[value(name = "EdDSA")]
    EdDSA,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
            Algorithm::EdDSA => "EdDSA",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("generating a {0:?} key failed")]
    Generate(Algorithm),
    #[error("the stored {0:?} key is not a valid PKCS#8 key: {1}")]
    Parse(Algorithm, String),
    #[error("signing failed")]
    Sign,
}

/// Generates a new private key as PKCS#8 DER.
pub fn generate_pkcs8(alg: Algorithm) -> Result<Vec<u8>, KeyError> {
    let rng = SystemRandom::new();
    let err = |_| KeyError::Generate(alg);
    Ok(match alg {
        Algorithm::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(err)?
            .as_ref()
            .to_vec(),
        Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(err)?
            .as_ref()
            .to_vec(),
        Algorithm::RS256 => {
            let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(err)?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = pair.as_der().map_err(err)?;
            der.as_ref().to_vec()
        }
    })
}

enum Pair {
    Es256(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rs(RsaKeyPair),
}

/// A parsed private key ready to sign, with its public JWK and `kid`.
pub struct SigningKey {
    pair: Pair,
    rng: SystemRandom,
    pub alg: Algorithm,
    pub kid: String,
    pub jwk: Jwk,
    /// The base64url header of access tokens.
    access_header: String,
}

/// `typ` of RFC 9068 access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish()
    }
}

/// A public JSON Web Key (RFC 7517) as the JWKS publishes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    pub kid: String,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order, base64url.
pub fn thumbprint(jwk: &Jwk) -> String {
    let canonical = match jwk.kty.as_str() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk.crv.as_deref().unwrap_or_default(),
            jwk.x.as_deref().unwrap_or_default(),
            jwk.y.as_deref().unwrap_or_default()
        ),
        "OKP" => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            jwk.crv.as_deref().unwrap_or_default(),
            jwk.x.as_deref().unwrap_or_default()
        ),
        _ => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            jwk.e.as_deref().unwrap_or_default(),
            jwk.n.as_deref().unwrap_or_default()
        ),
    };
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

impl SigningKey {
    /// Parses a PKCS#8 key once.
    pub fn from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let parse = |e: String| KeyError::Parse(alg, e);
        let (pair, mut jwk) = match alg {
            Algorithm::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|e| parse(e.to_string()))?;
                let point = pair.public_key().as_ref();
                if point.len() != 65 {
                    return Err(parse("unexpected public key size".into()));
                }
                let jwk = Jwk {
                    kty: "EC".into(),
                    crv: Some("P-256".into()),
                    x: Some(b64(&point[1..33])),
                    y: Some(b64(&point[33..65])),
                    n: None,
                    e: None,
                    use_: "sig".into(),
                    alg: alg.as_str().into(),
                    kid: String::new(),
                };
                (Pair::Es256(pair), jwk)
            }
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| parse(e.to_string()))?;
                let jwk = Jwk {
                    kty: "OKP".into(),
                    crv: Some("Ed25519".into()),
                    x: Some(b64(pair.public_key().as_ref())),
                    y: None,
                    n: None,
                    e: None,
                    use_: "sig".into(),
                    alg: alg.as_str().into(),
                    kid: String::new(),
                };
                (Pair::Ed(pair), jwk)
            }
            Algorithm::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| parse(e.to_string()))?;
                let public = pair.public_key();
                let jwk = Jwk {
                    kty: "RSA".into(),
                    crv: None,
                    x: None,
                    y: None,
                    n: Some(b64(public.modulus().big_endian_without_leading_zero())),
                    e: Some(b64(public.exponent().big_endian_without_leading_zero())),
                    use_: "sig".into(),
                    alg: alg.as_str().into(),
                    kid: String::new(),
                };
                (Pair::Rs(pair), jwk)
            }
        };
        let kid = thumbprint(&jwk);
        jwk.kid = kid.clone();
        let mut key = Self {
            pair,
            rng: SystemRandom::new(),
            alg,
            kid,
            jwk,
            access_header: String::new(),
        };
        key.access_header = key.header(ACCESS_TOKEN_TYP)?;
        Ok(key)
    }

    /// Signs `header.payload` (already base64url-encoded and joined) and returns the JWT.
    fn sign_input(&self, signing_input: String) -> Result<String, KeyError> {
        let signature = match &self.pair {
            Pair::Es256(pair) => pair
                .sign(&self.rng, signing_input.as_bytes())
                .map_err(|_| KeyError::Sign)?
                .as_ref()
                .to_vec(),
            Pair::Ed(pair) => pair.sign(signing_input.as_bytes()).as_ref().to_vec(),
            Pair::Rs(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    signing_input.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| KeyError::Sign)?;
                sig
            }
        };
        let mut jwt = signing_input;
        jwt.push('.');
        jwt.push_str(&b64(&signature));
        Ok(jwt)
    }

    /// The base64url header `{"alg", "typ", "kid"}`.
    fn header(&self, typ: &str) -> Result<String, KeyError> {
        let header = serde_json::json!({"alg": self.alg.as_str(), "typ": typ, "kid": self.kid});
        Ok(b64(
            &serde_json::to_vec(&header).map_err(|_| KeyError::Sign)?
        ))
    }

    /// A JWT with header `{"alg", "typ", "kid"}` and `claims`. The access-token header is
    /// encoded once per key, not per token.
    pub fn sign<C: Serialize>(&self, typ: &str, claims: &C) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        let mut input = if typ == ACCESS_TOKEN_TYP {
            self.access_header.clone()
        } else {
            self.header(typ)?
        };
        input.push('.');
        input.push_str(&b64(&payload));
        self.sign_input(input)
    }
}

/// Header fields a verifier looks at.
#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

impl SigningKey {
    fn verify_signature(&self, input: &[u8], sig: &[u8]) -> bool {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
        };
        match &self.pair {
            Pair::Es256(p) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, p.public_key().as_ref())
                    .verify(input, sig)
                    .is_ok()
            }
            Pair::Ed(p) => UnparsedPublicKey::new(&ED25519, p.public_key().as_ref())
                .verify(input, sig)
                .is_ok(),
            Pair::Rs(p) => {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, p.public_key().as_ref())
                    .verify(input, sig)
                    .is_ok()
            }
        }
    }
}

/// Verifies a JWT issued by this server: a known `kid`, the `alg` of that key (never `none`,
/// never a symmetric algorithm), `typ` `at+jwt`, and a valid signature. Returns the payload.
pub fn verify_with<'a>(
    token: &str,
    key_by_kid: impl Fn(&str) -> Option<&'a SigningKey>,
) -> Option<serde_json::Value> {
    let mut parts = token.split('.');
    let (header_b64, payload_b64, sig_b64) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).ok()?).ok()?;
    let key = key_by_kid(header.kid.as_deref()?)?;
    if header.alg != key.alg.as_str() || header.typ.as_deref() != Some("at+jwt") {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).ok()?;
    let input = &token[..header_b64.len() + 1 + payload_b64.len()];
    if !key.verify_signature(input.as_bytes(), &sig) {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload_b64).ok()?).ok()
}

#[cfg(test)]
mod tests;
