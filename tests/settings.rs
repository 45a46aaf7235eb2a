//! Settings that make no sense together stop the binary at start, before it talks to any
//! cluster, with a message naming the flag; and the JWKS cache age those checks assume is the
//! one the endpoint serves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use axum::{body::Body, http::Request};
use m2m_operator::config::JWKS_MAX_AGE;

/// Runs `m2m-operator run <args>` with no cluster to talk to (a configuration that passes the
/// checks fails later, on the kubeconfig).
fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_m2m-operator"))
        .arg("run")
        .args(args)
        .env_clear()
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("M2M_ISSUER", "https://auth.example.com")
        .env("M2M_ADMIN_ADDR", "127.0.0.1:0")
        .env("M2M_TOKEN_ADDR", "127.0.0.1:1")
        .output()
        .expect("run m2m-operator")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_publish_ahead_within_the_jwks_cache_age_stops_the_binary() {
    let out = run(&["--signing-key-publish-ahead=2m"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("invalid configuration")
            && text.contains("--signing-key-publish-ahead (M2M_SIGNING_KEY_PUBLISH_AHEAD) is 2m")
            && text.contains("max-age"),
        "{text}"
    );
    assert!(
        !text.contains("kubeconfig"),
        "refused before any cluster: {text}"
    );
}

#[test]
fn a_retention_below_the_longest_token_and_a_nonsense_lease_stop_the_binary() {
    let out = run(&[
        "--signing-key-retention=12h",
        "--lease-duration=5s",
        "--lease-renew-before=5s",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("--signing-key-retention (M2M_SIGNING_KEY_RETENTION) is 12h"),
        "{text}"
    );
    assert!(text.contains("--lease-renew-before"), "{text}");
}

#[test]
fn valid_settings_pass_the_checks() {
    let out = run(&[]);
    let text = stderr(&out);
    assert!(!out.status.success(), "there is no cluster: {text}");
    assert!(!text.contains("invalid configuration"), "{text}");
}

#[tokio::test]
async fn the_jwks_is_served_with_the_cache_age_the_checks_assume() {
    let f = m2m_operator_testkit::token_http::Fixture::new();
    let (status, headers, _) = f
        .call(
            Request::get("/.well-known/jwks.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(status.is_success());
    let cache = headers
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        cache.contains(&format!("max-age={}", JWKS_MAX_AGE.as_secs())),
        "Cache-Control {cache:?} vs JWKS_MAX_AGE {JWKS_MAX_AGE:?}"
    );
}
