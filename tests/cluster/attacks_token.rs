//! Attacks on the token endpoint from issue 15 (items 1, 5, 10), each its own test over one
//! shared setup: a running operator, a fresh namespace and an Organization that allows it.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    http::{self, Outcome},
    operator::{Operator, Options},
};

/// An operator, a namespace and an Organization binding it.
struct Setup {
    client: kube::Client,
    op: Operator,
    ns: TestNamespace,
    org: String,
}

impl Setup {
    async fn new(env: &[(&str, &str)]) -> Self {
        let client = common::client().await;
        let mut options = Options::default();
        for (k, v) in env {
            options.extra_env.push(((*k).into(), (*v).into()));
        }
        let op = Operator::start_with(&client, options).await;
        let ns = TestNamespace::new(&client, "m2m-atk-token").await;
        let org = org_name("atk-token");
        apply_org(
            &client,
            &org,
            json!({"code": format!("org_{}", common::suffix()), "namespaces": [ns.name]}),
        )
        .await;
        Self {
            client,
            op,
            ns,
            org,
        }
    }

    /// A new app of the Organization, once it has credentials: its id and secret.
    async fn app(&self, name: &str) -> (String, String) {
        apply_app(
            &self.client,
            &self.ns.name,
            name,
            json!({"organizationRef": {"name": self.org}, "audiences": ["api"]}),
        )
        .await;
        wait_app_reason(
            &self.client,
            &self.ns.name,
            name,
            "True",
            "CredentialsIssued",
        )
        .await;
        let (id, secret) = credentials(&self.client, &self.ns.name, name).await;
        common::watch(&secret);
        (id, secret)
    }

    /// The first token request of a new app: retried only while the endpoint's cache has not
    /// seen the app yet (401); anything else, a 503 above all, fails the test.
    async fn first_token(&self, id: &str, secret: &str) {
        let port = self.op.token_port;
        wait_for(
            "the new app's first token",
            Duration::from_secs(15),
            || async {
                match http::token_once(port, id, secret).await {
                    Outcome::Status(200) => Ok(()),
                    Outcome::Status(401) => Err("401: not in the cache yet".to_owned()),
                    other => panic!("a new app's first request got {other:?}"),
                }
            },
        )
        .await;
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self.op.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics"))
    }

    async fn finish(self) {
        delete_org(&self.client, &self.org).await;
        self.ns.delete().await;
    }
}

/// The raw token request of `id` with a wrong secret.
fn wrong_secret_request(id: &str) -> Vec<u8> {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{id}:m2msec_wrong"));
    let body = "grant_type=client_credentials";
    format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn hang_ups_mid_verification_neither_wedge_nor_overrun_the_argon2id_pool() {
    // Throttles out of the way (this is about the pool), a small pool.
    let s = Setup::new(&[
        ("M2M_ARGON2_WORKERS", "2"),
        ("M2M_ARGON2_MAX_IN_FLIGHT", "16"),
        ("M2M_MAX_FAILURES_PER_CLIENT", "100000000"),
        ("M2M_MAX_FAILURES_PER_SOURCE", "100000000"),
    ])
    .await;
    let (victim, _) = s.app("victim").await;
    let port = s.op.token_port;
    let request = wrong_secret_request(&victim);
    let mut peak = 0.0f64;
    // 400 connections that send a wrong secret for a real client_id and close after ~50 ms.
    for _ in 0..10 {
        let wave: Vec<_> = (0..40)
            .map(|_| {
                let request = request.clone();
                tokio::spawn(async move {
                    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .expect("connect");
                    stream.write_all(&request).await.expect("send");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                })
            })
            .collect();
        peak = peak.max(s.metric("m2m_argon2_jobs_running").await);
        for t in wave {
            t.await.unwrap();
        }
        peak = peak.max(s.metric("m2m_argon2_jobs_running").await);
    }
    // At once: a freshly created app gets a token.
    let (id, secret) = s.app("fresh").await;
    s.first_token(&id, &secret).await;
    assert!(peak <= 2.0, "{peak} argon2id jobs ran at once on 2 workers");
    wait_for("the pool to empty", Duration::from_secs(30), || async {
        match s.metric("m2m_argon2_admitted").await {
            0.0 => Ok(()),
            n => Err(format!("{n} admitted")),
        }
    })
    .await;
    assert_eq!(s.op.readyz().await, Some(200));
    s.finish().await;
}

#[tokio::test]
async fn made_up_client_ids_from_one_address_do_not_lock_out_a_new_app() {
    // Default throttling: 100 failures per source per minute.
    let s = Setup::new(&[]).await;
    for i in 0..110 {
        let made_up = format!("m2m_{i:032x}");
        let (status, body) = http::token(&s.op.url(), &made_up, "m2msec_guess", &[]).await;
        assert_eq!(status, 401, "{body}");
    }
    let (id, secret) = s.app("fresh").await;
    s.first_token(&id, &secret).await;
    s.finish().await;
}

#[tokio::test]
async fn slow_and_idle_clients_do_not_exhaust_the_listener() {
    let s = Setup::new(&[
        ("M2M_MAX_CONNECTIONS", "256"),
        ("M2M_HEADER_READ_TIMEOUT", "2s"),
    ])
    .await;
    // Few file descriptors, as in a tight container: without a cap, idle connections alone
    // would take them all and the listener could accept nothing more.
    let pid = s.op.pid().to_string();
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=512:512"])
        .status()
        .expect("prlimit");
    assert!(limited.success(), "prlimit --nofile on the operator");
    let (id, secret) = s.app("agent").await;
    let port = s.op.token_port;
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
        );
    }
    // Heads sent a byte at a time.
    let slow: Vec<_> = (0..50)
        .map(|_| {
            tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("connect");
                let mut probe = [0u8; 16];
                for byte in b"POST /oauth2/token HTTP/1.1\r\nX-Slow: "
                    .iter()
                    .chain([b'a'; 200].iter())
                {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return true;
                    }
                    if tokio::time::timeout(Duration::from_millis(100), stream.read(&mut probe))
                        .await
                        .is_ok()
                    {
                        return true;
                    }
                }
                false
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..5 {
        assert_eq!(
            http::token_once(port, &id, &secret).await,
            Outcome::Status(200),
            "a client among 1000 idle and 50 slow connections"
        );
    }
    for t in slow {
        assert!(
            t.await.unwrap(),
            "a slow client was disconnected within 20 s"
        );
    }
    let open = s.metric("m2m_token_connections").await;
    assert!(open <= 256.0, "{open} connections open with a cap of 256");
    drop(idle);
    s.finish().await;
}
