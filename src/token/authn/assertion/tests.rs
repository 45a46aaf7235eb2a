use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{EncodingKey, Header, jwk::JwkSet};
use serde_json::{Value, json};

use super::*;

const ISSUER: &str = "https://kubernetes.default.svc";
const AUD: &str = "https://m2m.example.com";
const NOW: i64 = 1_800_000_000;

/// A P-256 key pair: the signing key and its JWK Set (kid `k1`).
pub(crate) fn ec_key(kid: &str) -> (EncodingKey, JwkSet) {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let der = pair.to_pkcs8v1().unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let set: JwkSet = serde_json::from_value(json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]}))
    .unwrap();
    (EncodingKey::from_ec_der(der.as_ref()), set)
}

fn sa_claims(ns: &str, name: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": [AUD], "sub": format!("system:serviceaccount:{ns}:{name}"),
        "exp": NOW + 600, "iat": NOW - 10, "nbf": NOW - 10,
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": "sa-uid"}},
    })
}

fn sign(key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn expect() -> SaExpectations<'static> {
    SaExpectations {
        issuer: ISSUER,
        audience: AUD,
        max_lifetime_secs: 3600,
    }
}

fn check(token: &str, set: &JwkSet) -> Result<SaIdentity, Refused> {
    verify_service_account(token, &key_set(set), &expect(), NOW)
}

#[test]
fn a_service_account_token_of_the_issuer_verifies_and_names_its_account() {
    let (key, set) = ec_key("k1");
    let mut claims = sa_claims("tenant-a", "agent");
    claims["kubernetes.io"]["pod"] = json!({"name": "p", "uid": "pod-uid"});
    let id = check(&sign(&key, "k1", &claims), &set).unwrap();
    assert_eq!(id.namespace, "tenant-a");
    assert_eq!(id.service_account.name, "agent");
    assert_eq!(id.service_account.uid, "sa-uid");
    assert_eq!(id.pod.unwrap().uid, "pod-uid");
    assert_eq!(id.exp, NOW + 600);
}

#[test]
fn wrong_issuer_audience_subject_or_times_are_refused() {
    let (key, set) = ec_key("k1");
    let cases: Vec<(&str, Value, Refused)> = vec![
        ("iss", json!({"iss": "https://other"}), Refused::Invalid),
        (
            "aud",
            json!({"aud": ["https://kubernetes.default.svc"]}),
            Refused::Invalid,
        ),
        ("expired", json!({"exp": NOW - SKEW_SECS}), Refused::Expired),
        ("future iat", json!({"iat": NOW + 60}), Refused::NotYetValid),
        ("future nbf", json!({"nbf": NOW + 60}), Refused::NotYetValid),
        (
            "too long",
            json!({"exp": NOW + 3600 + SKEW_SECS + 1}),
            Refused::TooLong,
        ),
        (
            "sub",
            json!({"sub": "system:serviceaccount:tenant-a:other"}),
            Refused::NotServiceAccount,
        ),
        (
            "no k8s claims",
            json!({"kubernetes.io": null}),
            Refused::NotServiceAccount,
        ),
    ];
    for (what, patch, refused) in cases {
        let mut claims = sa_claims("tenant-a", "agent");
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        assert_eq!(
            check(&sign(&key, "k1", &claims), &set),
            Err(refused),
            "{what}"
        );
    }
    // Within the skew an expired token still works (clocks differ a little).
    let mut claims = sa_claims("tenant-a", "agent");
    claims["exp"] = json!(NOW - SKEW_SECS + 1);
    assert!(check(&sign(&key, "k1", &claims), &set).is_ok());
}

#[test]
fn other_keys_tampering_none_and_hmac_never_verify() {
    let (key, set) = ec_key("k1");
    let (other, _) = ec_key("k1");
    let claims = sa_claims("tenant-a", "agent");
    // Another issuer's key under a known kid, and under an unknown one.
    assert_eq!(
        check(&sign(&other, "k1", &claims), &set),
        Err(Refused::Invalid)
    );
    assert_eq!(
        check(&sign(&other, "k9", &claims), &set),
        Err(Refused::UnknownKey)
    );
    // A tampered payload keeps the signature of the original.
    let token = sign(&key, "k1", &claims);
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged = sa_claims("tenant-b", "agent");
    forged["sub"] = json!("system:serviceaccount:tenant-b:agent");
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
    let tampered = format!("{}.{body}.{}", parts[0], parts[2]);
    assert_eq!(check(&tampered, &set), Err(Refused::Invalid));
    // alg none: not an algorithm jsonwebtoken parses.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1","typ":"JWT"}"#),
        parts[1]
    );
    assert_eq!(check(&none, &set), Err(Refused::Malformed));
    // HS256 with the public key as the HMAC secret (algorithm confusion).
    let x = set.keys[0].common.key_id.clone().unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(x);
    let hmac = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(serde_json::to_string(&set).unwrap().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(check(&hmac, &set), Err(Refused::Invalid));
    assert_eq!(check("not.a.jwt", &set), Err(Refused::Malformed));
}

#[test]
fn only_asymmetric_keys_of_known_curves_are_pinned() {
    let set: JwkSet = serde_json::from_value(json!({"keys": [
        {"kty": "oct", "kid": "s", "k": "c2VjcmV0"},
        {"kty": "EC", "crv": "P-256", "kid": "mismatch", "alg": "ES384",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
         "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "EC", "crv": "P-256",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
         "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
    ]}))
    .unwrap();
    assert!(
        key_set(&set).is_empty(),
        "no symmetric, mismatched or kid-less key"
    );
    let (_, good) = ec_key("k1");
    assert_eq!(key_set(&good)["k1"].alg, Algorithm::ES256);
}
