//! Forged, tampered and expired tokens at introspection.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::Api;
use m2m_operator::token::{
    signing_keys::manager as signing,
    signing_keys::{KEYS_SECRET, KeyRing},
};
use serde_json::{Value, json};

use super::Arena;
use crate::{
    http,
    operator::{OPERATOR_NAMESPACE, Operator},
};

/// Replaces a token's header and/or payload and signature.
fn forge(token: &str, header: Option<Value>, payload: Option<Value>, signature: &str) -> String {
    let mut parts = token.split('.');
    let (h, p) = (parts.next().unwrap(), parts.next().unwrap());
    let enc = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{signature}",
        header.map_or(h.to_owned(), enc),
        payload.map_or(p.to_owned(), enc)
    )
}

fn part(token: &str, i: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(i).unwrap())
            .unwrap(),
    )
    .unwrap()
}

async fn introspect(op: &Operator, id: &str, secret: &str, token: &str) -> Value {
    let (status, body) = http::post_form(
        &format!("{}/oauth2/introspect", op.url()),
        Some((id, secret)),
        &[("token", token)],
    )
    .await;
    assert_eq!(status, 200, "introspection answers: {body}");
    body
}

#[tokio::test]
async fn forged_and_expired_tokens_are_inactive_at_introspection() {
    let mut arena = Arena::new("atk-forge").await;
    let (op, id, secret) = (
        &arena.op,
        arena.agent.id.clone(),
        arena.agent.secret.clone(),
    );
    let (other_id, other_secret) = (arena.other.id.clone(), arena.other.secret.clone());
    let records: Api<Secret> = Api::namespaced(arena.client.clone(), OPERATOR_NAMESPACE);
    let (status, body) = http::token(&op.url(), &id, &secret, &[("scope", "read")]).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    // 6. Forged and expired tokens at introspection (by a caller of the same org).
    let header = part(&token, 0);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let (status, other_body) = http::token(&op.url(), &other_id, &other_secret, &[]).await;
    assert_eq!(status, 200);
    let other_token = other_body["access_token"].as_str().unwrap().to_owned();
    let jwks = http::get_json(&format!("{}/.well-known/jwks.json", op.url())).await;
    let public = serde_json::to_vec(&jwks["keys"][0]).unwrap();
    let hs_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}).to_string()),
        token.split('.').nth(1).unwrap()
    );
    let hmac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &public);
    let hs256 = format!(
        "{hs_input}.{}",
        URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&hmac_key, hs_input.as_bytes()))
    );
    let mut payload = part(&token, 1);
    payload["scope"] = json!("read write admin");
    let tampered = forge(
        &token,
        None,
        Some(payload.clone()),
        token.split('.').nth(2).unwrap(),
    );
    let keys = signing::stored(&records.get(KEYS_SECRET).await.unwrap()).expect("key set");
    let ring = KeyRing::from_stored(&keys);
    payload["scope"] = json!("read");
    payload["exp"] = json!(Timestamp::now().as_second() - 5);
    let expired = ring
        .active(Timestamp::now())
        .unwrap()
        .sign("at+jwt", &payload)
        .unwrap();
    let forgeries = [
        (
            "alg none",
            forge(
                &token,
                Some(json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
                None,
                "",
            ),
        ),
        ("HS256 signed with the public key", hs256),
        (
            "unknown kid",
            forge(
                &token,
                Some(json!({"alg": "ES256", "typ": "at+jwt", "kid": "nope"})),
                None,
                token.split('.').nth(2).unwrap(),
            ),
        ),
        ("tampered payload", tampered),
        ("expired, correctly signed", expired),
        ("another org's token", other_token.clone()),
    ];
    assert_eq!(
        introspect(op, &id, &secret, &token).await["active"],
        true,
        "the genuine token is active"
    );
    for (what, forged) in forgeries {
        let body = introspect(op, &id, &secret, &forged).await;
        assert_eq!(body, json!({"active": false}), "{what}");
    }

    arena.sensitive.add(&token);
    arena.sensitive.add(&other_token);
    arena.finish().await;
}
