//! The token endpoint over HTTP, in-process: the real router and handlers over a cache filled
//! from fixtures. Tokens are verified with an independent JWT library against the served JWKS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use k8s_openapi::jiff::Timestamp;
use m2m_operator::{credentials::generate::client_id, token::metrics::OutcomeLabels};
use m2m_operator_testkit::token_http::*;
use serde_json::{Value, json};

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
async fn disabled_and_suspended_are_refused_only_after_authentication() {
    let f = Fixture::new();
    let (status, _, body) = f.token(&DISABLED, "").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
    let (status, _, body) = f.token(&SUSPENDED, "").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
    let wrong = f
        .post(
            "/oauth2/token",
            Some(basic(&client_id(DISABLED.uid), "m2msec_wrong")),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(
        wrong.0,
        StatusCode::UNAUTHORIZED,
        "a wrong secret learns nothing about the app's state"
    );
}

#[tokio::test]
async fn an_org_whose_code_an_older_org_holds_gets_no_tokens_from_the_next_request_on() {
    let mut world = world();
    let f = Fixture::over(world.cache.clone(), Duration::from_secs(10));
    assert_eq!(f.token(&ACME, "").await.0, StatusCode::OK);
    // An Organization older than acme (same creation time, earlier name) with acme's code: two
    // tenants must never share a code, so the newer one is refused from the next request on.
    world.org("aardvark", "org_acme", "tenant-z", &["read"], false);
    let (status, _, body) = f.token(&ACME, "").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
    let why = body["error_description"].as_str().unwrap_or_default();
    assert!(
        why.contains("OrganizationNotReady") && !why.contains("aardvark"),
        "says why without naming the other tenant: {why}"
    );
    assert_eq!(
        f.token(&GLOBEX, "").await.0,
        StatusCode::OK,
        "other codes are unaffected"
    );
}

#[tokio::test]
async fn repeated_failures_are_throttled_per_client_without_locking_out_the_real_client() {
    let f = Fixture::new();
    // The real client verifies once (argon2), then is on the fast path.
    assert_eq!(f.token(&ACME, "").await.0, StatusCode::OK);
    let id = client_id(ACME.uid);
    for _ in 0..3 {
        let (status, _, _) = f
            .post(
                "/oauth2/token",
                Some(basic(&id, "m2msec_guess")),
                "grant_type=client_credentials",
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, headers, body) = f
        .post(
            "/oauth2/token",
            Some(basic(&id, "m2msec_guess")),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        f.token(&ACME, "").await.0,
        StatusCode::OK,
        "the verified secret still works"
    );
    assert_eq!(
        f.token(&GLOBAL, "").await.0,
        StatusCode::OK,
        "other clients are unaffected"
    );
}

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

#[tokio::test]
async fn a_request_that_takes_too_long_gets_an_oauth_error() {
    let f = Fixture::with_timeout(Duration::from_millis(200));
    // A body that never arrives: the handler waits for it until the timeout.
    let stalled = futures::stream::pending::<Result<bytes::Bytes, std::io::Error>>();
    let request = Request::post("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(
            header::AUTHORIZATION,
            basic(&client_id(ACME.uid), ACME.secret),
        )
        .body(Body::from_stream(stalled))
        .unwrap();
    let (status, headers, body) = f.call(request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(headers.contains_key(header::RETRY_AFTER));
    // The handler never finished, so the refusal is counted where it is made.
    let counted = f
        .service
        .metrics()
        .requests
        .get_or_create(&OutcomeLabels {
            endpoint: "token",
            outcome: "temporarily_unavailable",
        })
        .get();
    assert_eq!(counted, 1, "m2m_token_requests_total counts the timeout");
}
