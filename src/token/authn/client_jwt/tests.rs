use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use crate::token::authn::assertion::tests::ec_key;

const ID: &str = "m2m_00000000000040008000000000000001";
const TOKEN_URL: &str = "https://m2m.example.com/oauth2/token";
const ISSUER: &str = "https://m2m.example.com";
const NOW: i64 = 1_800_000_000;

fn claims() -> Value {
    json!({"iss": ID, "sub": ID, "aud": TOKEN_URL, "exp": NOW + 60, "iat": NOW, "jti": "j1"})
}

fn sign(key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn check(token: &str, keys: &KeySet) -> Result<Verified, Refused> {
    verify(token, ID, keys, &[TOKEN_URL, ISSUER], NOW)
}

#[test]
fn a_signed_assertion_verifies_once_and_its_replay_is_refused() {
    let (key, set) = ec_key("k1");
    let keys = assertion::key_set(&set);
    let token = sign(&key, "k1", &claims());
    assert_eq!(unverified_issuer(&token).as_deref(), Some(ID));
    let verified = check(&token, &keys).unwrap();
    assert_eq!(
        verified,
        Verified {
            jti: "j1".into(),
            exp: NOW + 60
        }
    );
    let replays = Replays::default();
    assert_eq!(replays.first_use(ID, &verified, NOW), Ok(()));
    assert_eq!(
        replays.first_use(ID, &verified, NOW + 1),
        Err(Refused::Replayed)
    );
    // The same jti of another client is its own.
    assert_eq!(replays.first_use("m2m_other", &verified, NOW + 1), Ok(()));
    // The issuer as audience works too.
    let mut c = claims();
    c["aud"] = json!([ISSUER]);
    assert!(check(&sign(&key, "k1", &c), &keys).is_ok());
}

#[test]
fn expired_long_lived_wrong_audience_subject_or_without_jti_are_refused() {
    let (key, set) = ec_key("k1");
    let keys = assertion::key_set(&set);
    let cases: Vec<(&str, Value, Refused)> = vec![
        ("expired", json!({"exp": NOW - 60}), Refused::Expired),
        ("too long", json!({"exp": NOW + 3600}), Refused::TooLong),
        (
            "wrong aud",
            json!({"aud": "https://other.example.com/token"}),
            Refused::Invalid,
        ),
        ("wrong sub", json!({"sub": "m2m_other"}), Refused::Invalid),
        ("wrong iss", json!({"iss": "m2m_other"}), Refused::Invalid),
        ("no jti", json!({"jti": null}), Refused::Malformed),
    ];
    for (what, patch, refused) in cases {
        let mut c = claims();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        assert_eq!(check(&sign(&key, "k1", &c), &keys), Err(refused), "{what}");
    }
}

#[test]
fn unknown_keys_hmac_and_none_are_refused() {
    let (key, set) = ec_key("k1");
    let keys = assertion::key_set(&set);
    assert_eq!(
        check(&sign(&key, "k2", &claims()), &keys),
        Err(Refused::UnknownKey)
    );
    let (other, _) = ec_key("k1");
    assert_eq!(
        check(&sign(&other, "k1", &claims()), &keys),
        Err(Refused::Invalid)
    );
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let hs = jsonwebtoken::encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(b"k1").unwrap(),
    )
    .unwrap();
    assert_eq!(check(&hs, &keys), Err(Refused::Invalid));
    let token = sign(&key, "k1", &claims());
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let head =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
    assert_eq!(
        check(&format!("{head}.{payload}."), &keys),
        Err(Refused::Malformed)
    );
}

#[test]
fn the_crd_jwks_becomes_pinned_keys() {
    let (_, set) = ec_key("k1");
    let jwks: crate::api::Jwks =
        serde_json::from_value(serde_json::to_value(&set).unwrap()).unwrap();
    assert_eq!(keys_of(&jwks)["k1"].alg, Algorithm::ES256);
}
