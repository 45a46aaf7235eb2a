//! The token endpoint over HTTP, in-process: the real router and handlers over a cache filled
//! from fixtures. Tokens are verified with an independent JWT library against the served JWKS.
//! Issuing and client authentication here; refusals after authentication and timeouts in
//! `refusals.rs`; introspection in `introspection.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use m2m_operator::credentials::generate::client_id;
use m2m_operator_testkit::token_http::*;
use serde_json::json;

mod introspection;
mod refusals;

#[tokio::test]
async fn basic_auth_gets_a_verifiable_rfc9068_token_with_org_code() {
    let f = Fixture::new();
    let (status, headers, body) = f.token(&ACME, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "read write");
    let claims = verified_claims(&f, body["access_token"].as_str().unwrap()).await;
    let keys: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "aud",
        "azp",
        "client_id",
        "exp",
        "gty",
        "iat",
        "iss",
        "jti",
        "nbf",
        "org_code",
        "scope",
        "sub",
    ];
    expected.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, expected, "exactly the contract's claims");
    let id = client_id(ACME.uid);
    assert_eq!(
        (
            claims["sub"].as_str(),
            claims["client_id"].as_str(),
            claims["azp"].as_str()
        ),
        (Some(id.as_str()), Some(id.as_str()), Some(id.as_str()))
    );
    assert_eq!(claims["org_code"], "org_acme");
    assert_eq!(claims["aud"], json!(["api", "billing"]));
    assert_eq!(claims["gty"], "client_credentials");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
}

#[tokio::test]
async fn post_auth_and_a_global_app_without_org_code() {
    let f = Fixture::new();
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        client_id(GLOBAL.uid),
        GLOBAL.secret
    );
    let (status, _, body) = f.post("/oauth2/token", None, &body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = verified_claims(&f, body["access_token"].as_str().unwrap()).await;
    assert!(claims.get("org_code").is_none());
    assert_eq!(claims["scope"], "admin");
}

#[tokio::test]
async fn basic_credentials_are_form_decoded() {
    let f = Fixture::new();
    let encoded_id = client_id(ACME.uid).replace('_', "%5F");
    let (status, _, body) = f
        .post(
            "/oauth2/token",
            Some(basic(&encoded_id, ACME.secret)),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn request_parameters_cannot_change_server_claims() {
    let f = Fixture::new();
    let extra = "&org_code=org_globex&sub=someone&client_id_claim=x&iss=https://evil&azp=x&gty=password&exp=9999999999";
    let (status, _, body) = f.token(&ACME, extra).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = verified_claims(&f, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["org_code"], "org_acme");
    assert_eq!(claims["sub"], client_id(ACME.uid));
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["gty"], "client_credentials");
    assert!(claims["exp"].as_i64().unwrap() < 9_999_999_999);
}

#[tokio::test]
async fn scopes_and_audiences_narrow_or_are_refused() {
    let f = Fixture::new();
    let (status, _, body) = f.token(&ACME, "&scope=write&audience=billing").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = verified_claims(&f, body["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (claims["scope"].as_str(), claims["aud"].as_str()),
        (Some("write"), Some("billing"))
    );
    let (status, _, body) = f.token(&ACME, "&resource=api").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = f.token(&ACME, "&scope=admin").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    let (status, _, body) = f.token(&ACME, "&audience=https://evil.example").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target"))
    );
    let (status, _, body) = f.token(&ACME, "&scope=caf%C3%A9").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope")),
        "non-ASCII scope"
    );
}

/// Long on purpose: one table of cases over one helper; the table is the test.
#[tokio::test]
async fn client_authentication_errors() {
    let f = Fixture::new();
    let id = client_id(ACME.uid);
    // Wrong secret with Basic: 401 and a Basic challenge.
    let (status, headers, body) = f
        .post(
            "/oauth2/token",
            Some(basic(&id, "m2msec_wrong")),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    assert!(
        headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    // Wrong secret in the body: 401 without a challenge.
    let (status, headers, _) = f
        .post(
            "/oauth2/token",
            None,
            &format!("grant_type=client_credentials&client_id={id}&client_secret=x"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get(header::WWW_AUTHENTICATE).is_none());
    // Unknown client.
    let (status, _, _) = f
        .post(
            "/oauth2/token",
            Some(basic("m2m_ffffffffffffffffffffffffffffffff", "x")),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Malformed Basic headers.
    for bad in [
        "Basic",
        "Basic !!!",
        "Basic bm9jb2xvbg==",
        "Bearer abc",
        "basic",
    ] {
        let (status, headers, body) = f
            .post(
                "/oauth2/token",
                Some(bad.to_owned()),
                "grant_type=client_credentials",
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{bad}"
        );
        assert!(headers.contains_key(header::WWW_AUTHENTICATE), "{bad}");
    }
    // Both methods at once.
    let (status, _, body) = f
        .post(
            "/oauth2/token",
            Some(basic(&id, ACME.secret)),
            &format!(
                "grant_type=client_credentials&client_secret={}",
                ACME.secret
            ),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    // No authentication at all.
    let (status, _, body) = f
        .post("/oauth2/token", None, "grant_type=client_credentials")
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

#[tokio::test]
async fn malformed_requests() {
    let f = Fixture::new();
    let auth = Some(basic(&client_id(ACME.uid), ACME.secret));
    let (status, _, body) = f
        .post(
            "/oauth2/token",
            auth.clone(),
            "grant_type=client_credentials&scope=read&scope=write",
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "duplicate parameter"
    );
    let (status, _, body) = f
        .post(
            "/oauth2/token",
            auth.clone(),
            "grant_type=authorization_code",
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (status, _, body) = f.post("/oauth2/token", auth.clone(), "scope=read").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "missing grant_type"
    );
    let (status, _, body) = f
        .post(
            "/oauth2/token",
            auth.clone(),
            "grant_type=client_credentials&scope=%FF",
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "invalid UTF-8"
    );

    let json_body = Request::post("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, auth.clone().unwrap())
        .body(Body::from(r#"{"grant_type":"client_credentials"}"#))
        .unwrap();
    let (status, _, body) = f.call(json_body).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "wrong content type"
    );

    let huge = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(64 * 1024)
    );
    let (status, headers, body) = f.post("/oauth2/token", auth.clone(), &huge).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("invalid_request")),
        "oversized body refused before parsing, as an OAuth error: {body}"
    );
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");

    let get = Request::get("/oauth2/token").body(Body::empty()).unwrap();
    let (status, _, _) = f.call(get).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn discovery_documents_are_consistent() {
    let f = Fixture::new();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let (status, _, doc) = f
            .call(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc["issuer"], ISSUER);
        assert_eq!(doc["token_endpoint"], format!("{ISSUER}/oauth2/token"));
        assert_eq!(doc["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
        assert_eq!(
            doc["introspection_endpoint"],
            format!("{ISSUER}/oauth2/introspect")
        );
        assert_eq!(doc["grant_types_supported"], json!(["client_credentials"]));
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            json!([
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt"
            ])
        );
        assert_eq!(
            doc["token_endpoint_auth_signing_alg_values_supported"],
            json!(["ES256", "RS256", "EdDSA"])
        );
    }
    let set = f.jwks().await;
    assert_eq!(set.keys.len(), 1);
}
