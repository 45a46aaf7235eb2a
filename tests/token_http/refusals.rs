//! Refusals after authentication (disabled, suspended, duplicate codes), throttling, timeouts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use m2m_operator::{credentials::generate::client_id, token::metrics::OutcomeLabels};
use m2m_operator_testkit::token_http::*;

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
