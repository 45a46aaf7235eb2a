//! HTTPS on the token listener, and reloading the certificate when its files change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, process::Command, sync::Arc, time::Duration};

use m2m_operator::token::{self, TokenConfig, TokenService};
use m2m_operator_testkit::world::World;
use tokio_util::sync::CancellationToken;

fn self_signed(dir: &Path, name: &str) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.crt")))
        .output()
        .expect("openssl");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

fn curl_ok(url: &str, ca: &Path) -> bool {
    Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "--max-time", "5", "--cacert"])
        .arg(ca)
        .arg(url)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_and_reloads_a_renewed_certificate() {
    let dir = std::env::temp_dir().join(format!("m2m-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    self_signed(&dir, "first");
    self_signed(&dir, "second");
    std::fs::copy(dir.join("first.crt"), dir.join("tls.crt")).unwrap();
    std::fs::copy(dir.join("first.key"), dir.join("tls.key")).unwrap();

    let config = TokenConfig {
        operator_namespace: "m2m-system".into(),
        issuer: "https://127.0.0.1".into(),
        token_url: "https://127.0.0.1/oauth2/token".into(),
        argon2_workers: 1,
        argon2_max_in_flight: 4,
        max_failures_per_client: 10,
        max_failures_per_source: 10,
        failure_window: Duration::from_secs(60),
        trusted_proxies: Default::default(),
        global_apps: m2m_operator::tenancy::GlobalApps::anywhere(),
    };
    let service = Arc::new(TokenService::new(
        World::new("m2m-system").finish(),
        config,
        &mut prometheus_client::registry::Registry::default(),
    ));
    let limits = token::Limits {
        max_concurrent: 8,
        timeout: Duration::from_secs(5),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let shutdown = CancellationToken::new();
    let files = token::TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
        reload_every: Duration::from_millis(200),
    };
    let server = tokio::spawn(token::serve(
        format!("127.0.0.1:{port}").parse().unwrap(),
        token::router(service, &limits),
        token::ListenerConfig {
            tls: Some(files),
            ..Default::default()
        },
        shutdown.clone(),
    ));
    let url = format!("https://127.0.0.1:{port}/.well-known/jwks.json");
    let mut up = false;
    for _ in 0..50 {
        if tokio::task::spawn_blocking({
            let (url, ca) = (url.clone(), dir.join("first.crt"));
            move || curl_ok(&url, &ca)
        })
        .await
        .unwrap()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "HTTPS with the first certificate");
    assert!(
        !curl_ok(&url, &dir.join("second.crt")),
        "the second certificate is not served yet"
    );

    // Renew: the files change in place, as a mounted cert-manager Secret does.
    std::fs::copy(dir.join("second.key"), dir.join("tls.key")).unwrap();
    std::fs::copy(dir.join("second.crt"), dir.join("tls.crt")).unwrap();
    let mut reloaded = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (u, ca) = (url.clone(), dir.join("second.crt"));
        if tokio::task::spawn_blocking(move || curl_ok(&u, &ca))
            .await
            .unwrap()
        {
            reloaded = true;
            break;
        }
    }
    assert!(
        reloaded,
        "the renewed certificate is served without a restart"
    );
    shutdown.cancel();
    server.await.unwrap().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_its_tls_handshake_is_cut_off_at_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = std::env::temp_dir().join(format!("m2m-tls-slow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    self_signed(&dir, "tls");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let shutdown = CancellationToken::new();
    let service = Arc::new(TokenService::new(
        World::new("m2m-system").finish(),
        TokenConfig {
            operator_namespace: "m2m-system".into(),
            issuer: "https://127.0.0.1".into(),
            token_url: "https://127.0.0.1/oauth2/token".into(),
            argon2_workers: 1,
            argon2_max_in_flight: 4,
            max_failures_per_client: 10,
            max_failures_per_source: 10,
            failure_window: Duration::from_secs(60),
            trusted_proxies: Default::default(),
            global_apps: m2m_operator::tenancy::GlobalApps::anywhere(),
        },
        &mut prometheus_client::registry::Registry::default(),
    ));
    let limits = token::Limits {
        max_concurrent: 8,
        timeout: Duration::from_secs(5),
    };
    let server = tokio::spawn(token::serve(
        format!("127.0.0.1:{port}").parse().unwrap(),
        token::router(service, &limits),
        token::ListenerConfig {
            tls: Some(token::TlsFiles {
                cert: dir.join("tls.crt"),
                key: dir.join("tls.key"),
                reload_every: Duration::from_secs(60),
            }),
            limits: token::listener::conn::ConnectionLimits {
                header_read_timeout: Duration::from_secs(1),
                ..Default::default()
            },
            metrics: Default::default(),
        },
        shutdown.clone(),
    ));
    let mut stream = loop {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The first bytes of a TLS record (a ClientHello would follow), then nothing.
    stream.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "a stalled handshake is closed after the 1s header-read timeout: {closed:?}"
    );
    shutdown.cancel();
    server.await.unwrap().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
