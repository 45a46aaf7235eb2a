//! Token quotas on the request path, in process: a request dropped while it authenticates
//! counts nothing, requests at once never pass the quota, and a refusal is a 429 with
//! Retry-After and its own outcome. (Across replicas: tests/cluster/quotas.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use m2m_operator::{
    api::{QuotaMode, QuotaSpec},
    credentials::{
        generate::{ClientSecret, client_id},
        hash,
    },
};
use m2m_operator_testkit::{
    token_http::{Fixture, basic, service_with, world},
    world::{FixtureApp, phc},
};
use tower::ServiceExt;

const UID: &str = "00000000-0000-4000-8000-0000000000c1";
const SECRET: &str = "m2msec_capped";

/// The fixture world plus an app allowed `per_minute` tokens a minute.
fn fixture(per_minute: i64) -> Fixture {
    let mut w = world();
    w.app_with(
        &FixtureApp {
            uid: UID.into(),
            name: "capped".into(),
            namespace: "tenant-a".into(),
            org: Some("acme".into()),
            scopes: Vec::new(),
            audiences: vec!["api".into()],
            disabled: false,
            current: phc(&hash::hash(&ClientSecret::new(SECRET)).unwrap()),
        },
        |app| {
            app.spec.quota = Some(Box::new(QuotaSpec {
                tokens_per_minute: Some(per_minute),
                tokens_per_day: None,
                mode: QuotaMode::Enforce,
            }));
        },
    );
    let service = service_with(w.finish(), |c| c.argon2_workers = 1);
    Fixture::with_service(service, Duration::from_secs(10))
}

/// Waits out the end of a UTC minute, so a test's requests fall into one quota window.
async fn fresh_minute() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    if now % 60.0 > 55.0 {
        tokio::time::sleep(Duration::from_secs_f64(60.5 - now % 60.0)).await;
    }
}

fn request() -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, basic(&client_id(UID), SECRET))
        .body(Body::from("grant_type=client_credentials"))
        .unwrap()
}

async fn statuses(f: &Fixture, n: usize) -> Vec<StatusCode> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(f.call(request()).await.0);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_while_it_authenticates_uses_nothing_of_the_quota() {
    let f = fixture(2);
    fresh_minute().await;
    // The client's first request verifies its secret with argon2id on a blocking thread: the
    // handler waits there, and a client hanging up (or the timeout) drops it at that await.
    let mut dropped = Box::pin(f.router.clone().oneshot(request()));
    assert!(
        futures::poll!(&mut dropped).is_pending(),
        "the request did not wait for its argon2id check"
    );
    drop(dropped);
    // Let the abandoned check finish.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = statuses(&f, 4).await;
    let ok = got.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(
        ok, 2,
        "the dropped request took nothing of the quota of 2: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_at_once_never_pass_the_quota_and_a_refusal_says_when_to_retry() {
    let f = fixture(5);
    fresh_minute().await;
    // The first request verifies the secret; the ones at once then all take the fast path.
    assert_eq!(f.call(request()).await.0, StatusCode::OK);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let router = f.router.clone();
            tokio::spawn(async move { router.oneshot(request()).await.unwrap() })
        })
        .collect();
    let mut ok = 0;
    let mut refused = None;
    for t in tasks {
        let response = t.await.unwrap();
        match response.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => refused = Some(response),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        ok, 4,
        "40 requests at once got the quota's 4 remaining tokens, no more"
    );
    let refused = refused.expect("a refusal");
    let retry: u64 = refused.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    let metrics = &f.service.metrics().requests;
    let outcome = |o: &'static str| {
        metrics
            .get_or_create(&m2m_operator::token::metrics::OutcomeLabels {
                endpoint: "token",
                outcome: o,
            })
            .get()
    };
    assert_eq!(outcome("quota_exceeded"), 36);
    assert_eq!(outcome("issued"), 5);
    assert_eq!(
        outcome("temporarily_unavailable"),
        0,
        "quota refusals are not counted as the endpoint being unavailable"
    );
}
