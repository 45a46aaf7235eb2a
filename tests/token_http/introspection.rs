//! RFC 7662 introspection: tenant isolation and forged tokens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::{StatusCode, header};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use k8s_openapi::jiff::Timestamp;
use m2m_operator::credentials::generate::client_id;
use m2m_operator_testkit::token_http::*;
use serde_json::{Value, json};

async fn introspect(f: &Fixture, caller: &App, token: &str) -> Value {
    let (status, headers, body) = f
        .post(
            "/oauth2/introspect",
            Some(basic(&client_id(caller.uid), caller.secret)),
            &format!("token={token}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    body
}

fn forge(token: &str, header: Value, payload: Option<Value>, signature: Option<&str>) -> String {
    let mut parts = token.split('.');
    let _ = parts.next();
    let original_payload = parts.next().unwrap().to_owned();
    let sig = parts.next().unwrap().to_owned();
    let payload = payload.map_or(original_payload, |p| URL_SAFE_NO_PAD.encode(p.to_string()));
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        payload,
        signature.unwrap_or(&sig)
    )
}

/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test]
async fn introspection_isolates_tenants_and_rejects_forgeries() {
    let f = Fixture::new();
    let acme_token = f.token(&ACME, "").await.2["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let globex_token = f.token(&GLOBEX, "").await.2["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let own = introspect(&f, &ACME, &acme_token).await;
    assert_eq!(own["active"], true);
    assert_eq!(own["org_code"], "org_acme");
    assert_eq!(
        introspect(&f, &ACME, &globex_token).await,
        json!({"active": false}),
        "other org's token"
    );
    assert_eq!(
        introspect(&f, &GLOBAL, &globex_token).await["active"],
        true,
        "a global caller sees all"
    );

    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(acme_token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let kid = header["kid"].as_str().unwrap();
    let none = forge(
        &acme_token,
        json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
        None,
        Some(""),
    );
    assert_eq!(
        introspect(&f, &ACME, &none).await["active"],
        false,
        "alg none"
    );
    let unknown = forge(
        &acme_token,
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "nope"}),
        None,
        None,
    );
    assert_eq!(
        introspect(&f, &ACME, &unknown).await["active"],
        false,
        "unknown kid"
    );
    // HS256 "signed" with the public key as the HMAC secret.
    let jwks = f.jwks().await;
    let public = serde_json::to_vec(&jwks.keys[0]).unwrap();
    let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let hs_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(hs_header.to_string()),
        acme_token.split('.').nth(1).unwrap()
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &public);
    let hs = format!(
        "{hs_input}.{}",
        URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, hs_input.as_bytes()))
    );
    assert_eq!(
        introspect(&f, &ACME, &hs).await["active"],
        false,
        "HS256 with the public key"
    );
    let mut payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(acme_token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    payload["scope"] = json!("read write admin");
    let tampered = forge(&acme_token, header.clone(), Some(payload.clone()), None);
    assert_eq!(
        introspect(&f, &ACME, &tampered).await["active"],
        false,
        "tampered payload"
    );
    assert_eq!(introspect(&f, &ACME, "not-a-jwt").await["active"], false);

    // Correctly signed by the server's own key, but expired.
    payload["scope"] = json!("read write");
    payload["exp"] = json!(Timestamp::now().as_second() - 10);
    let ring = f.service.key_ring();
    let expired = ring
        .active(Timestamp::now())
        .unwrap()
        .sign("at+jwt", &payload)
        .unwrap();
    assert_eq!(
        introspect(&f, &ACME, &expired).await["active"],
        false,
        "expired"
    );
    payload["exp"] = json!(Timestamp::now().as_second() + 60);
    let fresh = ring
        .active(Timestamp::now())
        .unwrap()
        .sign("at+jwt", &payload)
        .unwrap();
    assert_eq!(
        introspect(&f, &ACME, &fresh).await["active"],
        true,
        "the same token, not expired"
    );
}
