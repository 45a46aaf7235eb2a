//! Malformed requests and brute force over real HTTP.

use super::Arena;
use crate::http;

#[tokio::test]
async fn oversized_and_malformed_requests_get_oauth_errors() {
    let mut arena = Arena::new("atk-malformed").await;
    // 10. Oversized and malformed requests.
    let url = format!("{}/oauth2/token", arena.op.url());
    let form = "application/x-www-form-urlencoded";
    let big = format!("grant_type=client_credentials&pad={}", "a".repeat(9 * 1024));
    let cases: [(&str, &str, String, u16); 5] = [
        ("oversized body", form, big, 413),
        (
            "JSON body",
            "application/json",
            r#"{"grant_type":"client_credentials"}"#.into(),
            400,
        ),
        (
            "duplicate grant_type",
            form,
            "grant_type=client_credentials&grant_type=client_credentials".into(),
            400,
        ),
        (
            "unknown grant type",
            form,
            "grant_type=password&username=a&password=b".into(),
            400,
        ),
        (
            "invalid UTF-8",
            form,
            "grant_type=client_credentials&scope=%FF%FE".into(),
            400,
        ),
    ];
    for (what, content_type, body, expected) in cases {
        let (status, text) = http::post_raw(
            &url,
            &[&format!("Content-Type: {content_type}")],
            (&arena.agent.id, &arena.agent.secret),
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, expected, "{what}: {text}");
        let error: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let code = if what == "unknown grant type" {
            "unsupported_grant_type"
        } else {
            "invalid_request"
        };
        assert_eq!(error["error"], code, "{what}: an OAuth error: {text}");
        arena.bodies.push((what.into(), text));
    }

    arena.finish().await;
}

#[tokio::test]
async fn a_flood_of_wrong_secrets_is_throttled_for_that_client_only() {
    let mut arena = Arena::new("atk-flood").await;
    // 11. A flood of wrong secrets for one client: throttled; other clients are not.
    let mut throttled = None;
    for i in 0..30 {
        let (status, body) = http::token(
            &arena.op.url(),
            &arena.agent.id,
            &format!("m2msec_wrong{i}"),
            &[],
        )
        .await;
        arena.bodies.push(("wrong secret".into(), body.to_string()));
        if status == 429 {
            throttled = Some(body);
            break;
        }
        assert_eq!(status, 401, "{body}");
    }
    assert!(
        throttled.is_some(),
        "30 wrong secrets in a row are throttled"
    );
    let other = arena.other.clone();
    arena
        .wait_token("another client unaffected", &other, 200, None)
        .await;
    arena.finish().await;
}
