//! `spec.clientAuthentication` of an M2MApp: which ways its client may authenticate at the token
//! endpoint (a shared secret, the namespace's ServiceAccount tokens, its own key pair), and the
//! public keys of `PrivateKeyJWT`. The API server refuses what the token endpoint could not use
//! (CEL): a method without what it needs, a symmetric or private key, a key too weak.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A way an app's client may authenticate.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum AuthMethod {
    /// `client_secret_basic` / `client_secret_post` with the generated `client_secret`.
    ClientSecret,
    /// An RFC 7523 client assertion that is a projected ServiceAccount token of one of
    /// `serviceAccountNames`, audience = the operator's issuer.
    ServiceAccountToken,
    /// `private_key_jwt`: an RFC 7523 client assertion the client signed with a key of `jwks`.
    #[serde(rename = "PrivateKeyJWT")]
    PrivateKeyJwt,
}

/// How the app's client authenticates. Absent: `ClientSecret` only.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "!self.methods.exists(m, m == 'ServiceAccountToken') || (has(self.serviceAccountNames) && size(self.serviceAccountNames) > 0)"
).message("clientAuthentication: method ServiceAccountToken needs at least one serviceAccountNames entry"))]
#[x_kube(validation = kube::core::Rule::new(
    "!self.methods.exists(m, m == 'PrivateKeyJWT') || has(self.jwks)"
).message("clientAuthentication: method PrivateKeyJWT needs jwks"))]
pub struct ClientAuthentication {
    /// The methods the client may use, at least one: `ClientSecret`, `ServiceAccountToken`,
    /// `PrivateKeyJWT`. Without `ClientSecret` no client secret is generated, hashed or stored
    /// (a secret issued before keeps working for `rotation.gracePeriod`, then is refused).
    #[schemars(length(min = 1, max = 3), extend("x-kubernetes-list-type" = "set"))]
    pub methods: Vec<AuthMethod>,

    /// ServiceAccounts of the app's own namespace whose tokens may act as this app
    /// (`ServiceAccountToken`). At most 16 names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
            length(min = 1, max = 253)
        ),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub service_account_names: Vec<String>,

    /// The client's public keys (`PrivateKeyJWT`), as an RFC 7517 JWK Set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Jwks>,
}

/// An RFC 7517 JWK Set of public signature keys.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = kube::core::Rule::new(
    "self.keys.all(a, self.keys.exists_one(b, b.kid == a.kid))"
).message("jwks: every kid must be unique"))]
pub struct Jwks {
    /// 1 to 8 keys, each with a unique `kid`.
    #[schemars(length(min = 1, max = 8))]
    pub keys: Vec<Jwk>,
}

/// Key types a client key may have (`oct`, a shared secret, is not one).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum KeyType {
    /// Elliptic curve: `crv` P-256 (ES256).
    #[default]
    #[serde(rename = "EC")]
    Ec,
    /// RSA, at least 2048 bits (RS256).
    #[serde(rename = "RSA")]
    Rsa,
    /// Octet key pair: `crv` Ed25519 (EdDSA).
    #[serde(rename = "OKP")]
    Okp,
}

/// One public key (RFC 7517/7518/8037). The algorithm is fixed by the key type: EC P-256 is
/// ES256, RSA is RS256, OKP Ed25519 is EdDSA. A private member (`d`, `p`, `q`, `dp`, `dq`,
/// `qi`, `k`) is refused: publish only the public half.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = kube::core::Rule::new(
    "self.kty != 'EC' || (has(self.crv) && self.crv == 'P-256' && has(self.x) && size(self.x) == 43 && has(self.y) && size(self.y) == 43 && !has(self.n) && !has(self.e))"
).message("jwks: an EC key must be crv P-256 with x and y (32 bytes each, base64url)"))]
#[x_kube(validation = kube::core::Rule::new(
    "self.kty != 'RSA' || (has(self.n) && size(self.n) >= 342 && has(self.e) && !has(self.crv) && !has(self.x) && !has(self.y))"
).message("jwks: an RSA key needs n of at least 2048 bits and e"))]
#[x_kube(validation = kube::core::Rule::new(
    "self.kty != 'OKP' || (has(self.crv) && self.crv == 'Ed25519' && has(self.x) && size(self.x) == 43 && !has(self.y) && !has(self.n) && !has(self.e))"
).message("jwks: an OKP key must be crv Ed25519 with x (32 bytes, base64url)"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.alg) || (self.kty == 'EC' && self.alg == 'ES256') || (self.kty == 'RSA' && self.alg == 'RS256') || (self.kty == 'OKP' && self.alg == 'EdDSA')"
).message("jwks: alg must match the key: ES256 for EC P-256, RS256 for RSA, EdDSA for Ed25519"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.d) && !has(self.p) && !has(self.q) && !has(self.dp) && !has(self.dq) && !has(self.qi) && !has(self.k)"
).message("jwks: a key holds a private member (d, p, q, dp, dq, qi or k): publish only the public key, and treat the private key as leaked"))]
pub struct Jwk {
    /// `EC`, `RSA` or `OKP`.
    pub kty: KeyType,
    /// The key id the client puts into its assertion's header. 1-128 characters.
    #[schemars(length(min = 1, max = 128))]
    pub kid: String,
    /// `sig` if present.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^sig$"), length(max = 3))]
    pub use_: Option<String>,
    /// `ES256`, `RS256` or `EdDSA` if present (must match the key type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(ES256|RS256|EdDSA)$"), length(max = 8))]
    pub alg: Option<String>,
    /// `P-256` (EC) or `Ed25519` (OKP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(P-256|Ed25519)$"), length(max = 8))]
    pub crv: Option<String>,
    /// EC / OKP public x coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"), length(max = 43))]
    pub x: Option<String>,
    /// EC public y coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"), length(max = 43))]
    pub y: Option<String>,
    /// RSA modulus, base64url (2048 to 8192 bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"), length(max = 1366))]
    pub n: Option<String>,
    /// RSA public exponent, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"), length(max = 8))]
    pub e: Option<String>,
    /// Never allowed (a private member); declared so that it is refused, not silently dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub d: Option<String>,
    /// Never allowed (an RSA private member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub p: Option<String>,
    /// Never allowed (an RSA private member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub q: Option<String>,
    /// Never allowed (an RSA private member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub dp: Option<String>,
    /// Never allowed (an RSA private member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub dq: Option<String>,
    /// Never allowed (an RSA private member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub qi: Option<String>,
    /// Never allowed (a symmetric key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub k: Option<String>,
}

impl ClientAuthentication {
    /// Whether `method` is one of the app's.
    pub fn allows(&self, method: AuthMethod) -> bool {
        self.methods.contains(&method)
    }
}
