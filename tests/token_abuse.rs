//! The token endpoint under abuse (issue 15): throttling that an attacker cannot turn against
//! other clients (made-up client ids, a shared proxy address, IPv6 hosts), and requests that
//! hang up mid-verification, which must neither wedge the argon2id pool nor escape the throttle.
//! The hang-ups go over real TCP to the listener the operator runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use m2m_operator::{
    credentials::generate::client_id,
    token::{
        self, TokenService,
        authn::source::{TrustedProxies, parse_network},
    },
};
use m2m_operator_testkit::token_http::*;

/// A token request of `app` with `secret`, sent through a proxy that says it came from `from`.
fn via_proxy(app: &App, secret: &str, from: &str) -> Request<Body> {
    Request::post("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, basic(&client_id(app.uid), secret))
        .header("x-forwarded-for", format!("198.51.100.200, {from}"))
        .body(Body::from("grant_type=client_credentials"))
        .unwrap()
}

#[tokio::test]
async fn made_up_client_ids_from_one_address_do_not_lock_out_a_new_client() {
    // The default per-source limit (100), as behind an Ingress where every request shares it.
    let f = Fixture::with_config(|c| c.max_failures_per_source = 100);
    for i in 0..110 {
        let made_up = format!("m2m_{i:032x}");
        let (status, _, body) = f
            .post(
                "/oauth2/token",
                Some(basic(&made_up, "m2msec_guess")),
                "grant_type=client_credentials",
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (status, _, body) = f.token(&GLOBEX, "").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a new app's first request with its right secret: {body}"
    );
}

fn behind_proxy(c: &mut token::TokenConfig) {
    c.max_failures_per_client = 1000;
    c.max_failures_per_source = 3;
    c.trusted_proxies = TrustedProxies {
        networks: vec![parse_network("127.0.0.0/8").unwrap()],
        header: Default::default(),
    };
}

async fn fail_from(f: &Fixture, from: &str, times: usize) {
    for _ in 0..times {
        let (status, _, body) = f.call(via_proxy(&ACME, "m2msec_guess", from)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_address_is_throttled_on_its_own() {
    let f = Fixture::with_config(behind_proxy);
    fail_from(&f, "203.0.113.9", 3).await;
    let (status, _, body) = f
        .call(via_proxy(&GLOBEX, GLOBEX.secret, "203.0.113.9"))
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the guessing address: {body}"
    );
    let (status, _, body) = f
        .call(via_proxy(&GLOBEX, GLOBEX.secret, "203.0.113.10"))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another client of the proxy: {body}"
    );
}

#[tokio::test]
async fn a_peer_that_is_not_a_trusted_proxy_cannot_pick_its_source_address() {
    let f = Fixture::with_config(|c| {
        behind_proxy(c);
        c.trusted_proxies.networks = vec![parse_network("10.0.0.0/8").unwrap()];
    });
    // The fixture's peer (127.0.0.1) is not trusted: a new X-Forwarded-For per request changes
    // nothing, all of them count against 127.0.0.1.
    for from in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        fail_from(&f, from, 1).await;
    }
    let (status, _, _) = f
        .call(via_proxy(&GLOBEX, GLOBEX.secret, "203.0.113.4"))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn ipv6_sources_are_throttled_per_64() {
    let f = Fixture::with_config(behind_proxy);
    for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"] {
        fail_from(&f, host, 1).await;
    }
    let (status, _, _) = f
        .call(via_proxy(&GLOBEX, GLOBEX.secret, "2001:db8:1:2::4"))
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a new address in the same /64 is the same source"
    );
    let (status, _, body) = f
        .call(via_proxy(&GLOBEX, GLOBEX.secret, "2001:db8:1:3::1"))
        .await;
    assert_eq!(status, StatusCode::OK, "the next /64 is not: {body}");
}

/// `n` connections that each send a complete token request of `app` with a wrong secret and
/// close after `after`, at once.
async fn hang_ups(addr: std::net::SocketAddr, app: &App, n: usize, after: Duration) {
    use tokio::io::AsyncWriteExt;
    let request = raw_token_request(&client_id(app.uid), "m2msec_wrong");
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.write_all(&request).await.unwrap();
                tokio::time::sleep(after).await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Waits until the pool is empty again (the abandoned jobs finish on their own).
async fn settle(service: &TokenService) {
    let gauges = service.pool_gauges();
    for _ in 0..400 {
        if gauges.running.get() == 0 && gauges.admitted.get() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the pool never emptied: running {} admitted {}",
        gauges.running.get(),
        gauges.admitted.get()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_mid_verification_leave_the_pool_to_new_clients() {
    // Throttles out of the way: this is about the pool.
    let service = service_with(world().finish(), |c| {
        c.argon2_workers = 2;
        c.argon2_max_in_flight = 8;
        c.max_failures_per_client = 1_000_000;
        c.max_failures_per_source = 1_000_000;
    });
    let served = listen(service.clone(), Default::default()).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (running, stop) = (service.pool_gauges().running.clone(), stop.clone());
        move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(running.get());
                std::thread::sleep(Duration::from_micros(200));
            }
            peak
        }
    });
    for _ in 0..6 {
        hang_ups(served.addr, &ACME, 12, Duration::from_millis(50)).await;
    }
    // At once: a new app's first request.
    let (status, body) = token_over_tcp(served.addr, &client_id(GLOBEX.uid), GLOBEX.secret).await;
    assert_eq!(status, 200, "after 72 hang-ups: {body}");
    settle(&service).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    assert!(
        (1..=2).contains(&peak),
        "{peak} argon2id jobs ran at once on 2 workers"
    );
    served.shutdown.cancel();
    served.server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_dropped_mid_verification_count_against_the_throttle() {
    // One worker, so the hang-ups are queued or running when they close; 3 failures per client.
    let service = service_with(world().finish(), |c| c.argon2_workers = 1);
    let served = listen(service.clone(), Default::default()).await;
    hang_ups(served.addr, &ACME, 8, Duration::from_millis(10)).await;
    settle(&service).await;
    let (status, body) = token_over_tcp(served.addr, &client_id(ACME.uid), "m2msec_wrong").await;
    assert_eq!(status, 429, "the dropped guesses were counted: {body}");
    served.shutdown.cancel();
    served.server.await.unwrap().unwrap();
}
