//! The audit log of the token endpoint: one JSON line per token request with the contract's
//! fields and never a secret or a token. Its own test binary, because it installs the
//! process-wide log subscriber.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::http::StatusCode;
use m2m_operator::credentials::generate::client_id;
use serde_json::{Value, json};

use m2m_operator_testkit::token_http::*;

/// Log lines written through the operator's JSON format, kept in memory.
#[derive(Clone, Default)]
struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn audit(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["target"] == "m2m_operator::audit")
            .collect()
    }
}

#[tokio::test]
async fn every_token_request_writes_one_audit_line_without_secrets() {
    let lines = Lines::default();
    let writer = lines.clone();
    // The process-wide subscriber (this binary's only test): a thread-local one can miss
    // events when other tests in the same process register the callsite concurrently.
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .init();
    let f = Fixture::new();
    let (status, _, body) = f.token(&ACME, "&scope=read").await;
    assert_eq!(status, StatusCode::OK);
    let token = body["access_token"].as_str().unwrap();
    let claims = verified_claims(&f, token).await;
    let (status, _, _) = f.token(&DISABLED, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let wrong = basic(&client_id(GLOBEX.uid), "m2msec_wrong");
    f.post(
        "/oauth2/token",
        Some(wrong),
        "grant_type=client_credentials",
    )
    .await;

    let huge = format!("grant_type=client_credentials&pad={}", "x".repeat(20_000));
    let too_large = basic(&client_id(ACME.uid), ACME.secret);
    f.post("/oauth2/token", Some(too_large), &huge).await;

    let audit = lines.audit();
    assert_eq!(audit.len(), 4, "{audit:#?}");
    let issued = &audit[0];
    assert_eq!(issued["outcome"], "issued");
    assert_eq!(issued["client_id"], client_id(ACME.uid));
    assert_eq!(issued["org_code"], "org_acme");
    assert_eq!(
        (&issued["namespace"], &issued["app"]),
        (&json!("tenant-a"), &json!("agent"))
    );
    assert_eq!(issued["scope"], "read");
    assert_eq!(issued["aud"], "api billing");
    assert_eq!(issued["jti"], claims["jti"], "the jti of the issued token");
    assert_eq!(issued["previous_secret"], false);
    let denied = &audit[1];
    assert_eq!(denied["outcome"], "unauthorized_client");
    assert_eq!(
        (&denied["namespace"], &denied["app"]),
        (&json!("tenant-a"), &json!("off"))
    );
    assert!(denied["reason"].as_str().unwrap().contains("disabled"));
    assert!(denied.get("jti").is_none());
    let refused = &audit[2];
    assert_eq!(refused["outcome"], "invalid_client");
    assert_eq!(refused["client_id"], client_id(GLOBEX.uid));
    assert!(
        refused.get("app").is_none(),
        "nothing learned before authentication"
    );
    let oversized = &audit[3];
    assert_eq!(oversized["outcome"], "invalid_request");
    assert!(
        oversized["reason"]
            .as_str()
            .unwrap()
            .contains("larger than")
    );
    let all = serde_json::to_string(&audit).unwrap();
    for secret in [ACME.secret, DISABLED.secret, "m2msec_wrong", token] {
        assert!(!all.contains(secret), "no secret or token in the audit log");
    }
}
