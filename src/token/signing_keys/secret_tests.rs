use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use k8s_openapi::{ByteString, api::core::v1::Secret, jiff::Timestamp};
use serde_json::{Value, json};

use super::*;
use crate::token::jwt::generate_pkcs8;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn policy() -> KeyPolicy {
    KeyPolicy {
        alg: Algorithm::ES256,
        rotate_every: Duration::from_secs(1000),
        publish_ahead: Duration::from_secs(100),
        keep_retired: Duration::from_secs(50),
    }
}

fn key_json(alg: &str, pkcs8: &str, active_from: &str) -> Value {
    json!({"alg": alg, "pkcs8": pkcs8, "createdAt": "1970-01-01T00:00:00Z", "activeFrom": active_from})
}

fn real_key(alg: Algorithm) -> String {
    STANDARD.encode(generate_pkcs8(alg).unwrap())
}

fn secret_with(bytes: &[u8]) -> Secret {
    Secret {
        data: Some([(DATA_KEY.to_owned(), ByteString(bytes.to_vec()))].into()),
        ..Secret::default()
    }
}

fn secret_of(value: &Value) -> Secret {
    secret_with(&serde_json::to_vec(value).unwrap())
}

fn unreadable(secret: &Secret) -> Unreadable {
    match read(Some(secret)) {
        KeySecret::Unreadable(e) => e,
        KeySecret::Readable { .. } => panic!("read as a key set"),
        KeySecret::Missing => panic!("read as missing"),
    }
}

/// The leader's action on `secret` at t=10.
fn leader(secret: &KeySecret) -> KeyAction {
    leader_action(secret, None, &policy(), t(10), generate_pkcs8).unwrap()
}

#[test]
fn a_missing_secret_gets_a_first_key_that_signs_at_once() {
    match leader(&read(None)) {
        KeyAction::Write(set) => {
            assert_eq!(set.keys.len(), 1);
            assert_eq!(set.keys[0].active_from, t(10));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_readable_set_is_planned_and_every_key_is_in_the_ring() {
    let first = real_key(Algorithm::ES256);
    let next = real_key(Algorithm::EdDSA);
    let secret = secret_of(&json!({"keys": [
        key_json("ES256", &first, "1970-01-01T00:00:00Z"),
        key_json("EdDSA", &next, "1970-01-01T00:01:40Z"),
    ]}));
    let read = read(Some(&secret));
    let KeySecret::Readable { set, ring } = &read else {
        panic!("not readable");
    };
    assert_eq!(set.keys.len(), 2);
    assert_eq!(ring.published().count(), 2);
    assert_eq!(ring.active(t(10)).unwrap().alg, Algorithm::ES256);
    assert_eq!(leader(&read), KeyAction::Keep, "nothing due at t=10");
}

#[test]
fn json_that_does_not_parse_is_never_replaced() {
    let good = real_key(Algorithm::ES256);
    let text = format!(
        r#"{{"keys": [{{"alg": "ES256", "pkcs8": "{good}", "createdAt": "1970-01-01T00:00:00Z",, }}]}}"#
    );
    let secret = secret_with(text.as_bytes());
    let e = unreadable(&secret);
    assert!(matches!(e, Unreadable::NotJson { line: 1, .. }), "{e:?}");
    assert_eq!(
        leader(&read(Some(&secret))),
        KeyAction::Refuse(e.clone()),
        "no write"
    );
    assert!(!e.to_string().contains(&good), "{e}");
}

#[test]
fn an_algorithm_of_a_newer_version_is_named_and_the_set_is_never_replaced() {
    let secret = secret_of(&json!({"keys": [
        key_json("ES256", &real_key(Algorithm::ES256), "1970-01-01T00:00:00Z"),
        key_json("PS256", "AAAA", "1970-01-01T00:01:40Z"),
    ]}));
    let e = unreadable(&secret);
    assert_eq!(
        e,
        Unreadable::UnknownAlgorithm {
            index: 1,
            alg: "\"PS256\"".into()
        }
    );
    assert!(e.to_string().contains("PS256"), "{e}");
    assert_eq!(leader(&read(Some(&secret))), KeyAction::Refuse(e));
}

#[test]
fn key_material_in_the_wrong_field_is_not_quoted() {
    let key = real_key(Algorithm::ES256);
    // A hand edit that put the key where the algorithm goes, and one that put it into a time.
    for value in [
        json!({"keys": [key_json(&key, "AAAA", "1970-01-01T00:00:00Z")]}),
        json!({"keys": [key_json("ES256", "AAAA", &key)]}),
        json!({"keys": [{"alg": "ES256", "pkcs8": 5, "createdAt": key}]}),
    ] {
        let e = unreadable(&secret_of(&value));
        let text = e.to_string();
        assert!(!text.contains(&key[..24]), "{text}");
        assert!(!text.contains(&key[key.len() - 24..]), "{text}");
    }
}

#[test]
fn a_key_that_does_not_parse_makes_the_whole_set_unreadable() {
    let good = real_key(Algorithm::ES256);
    let eddsa_as_es256 = real_key(Algorithm::EdDSA);
    for (pkcs8, reason) in [
        ("%%%not-base64%%%", "not base64"),
        (eddsa_as_es256.as_str(), ""),
    ] {
        let secret = secret_of(&json!({"keys": [
            key_json("ES256", &good, "1970-01-01T00:00:00Z"),
            key_json("ES256", pkcs8, "1970-01-01T00:01:40Z"),
        ]}));
        let e = unreadable(&secret);
        match &e {
            Unreadable::BadKey {
                index: 1,
                alg: "ES256",
                reason: r,
            } => assert!(r.contains(reason), "{r}"),
            other => panic!("{other:?}"),
        }
        assert!(!e.to_string().contains(&eddsa_as_es256[..24]), "{e}");
        assert_eq!(leader(&read(Some(&secret))), KeyAction::Refuse(e));
    }
}

#[test]
fn a_secret_without_keys_json_or_not_shaped_like_a_key_set_is_unreadable() {
    assert_eq!(unreadable(&Secret::default()), Unreadable::NoData);
    let e = unreadable(&secret_of(&json!({"kees": []})));
    assert!(matches!(e, Unreadable::NotAKeySet { .. }), "{e:?}");
    assert_eq!(e.category(), "not_a_key_set");
}

#[test]
fn an_empty_key_list_is_readable_and_gets_a_first_key() {
    // What deleting every key by hand asks for: the emergency procedure's fresh start.
    let read = read(Some(&secret_of(&json!({"keys": []}))));
    assert!(matches!(leader(&read), KeyAction::Write(set) if set.keys.len() == 1));
}
