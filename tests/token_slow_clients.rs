//! Slow and idle clients against the token listener over real TCP (issue 15, item 10): a
//! client that sends its headers a byte at a time is disconnected, thousands of idle
//! connections do not pile up, and other clients get tokens all the while.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use m2m_operator::{
    credentials::generate::client_id,
    token::{self, listener::conn::ConnectionLimits},
};
use m2m_operator_testkit::token_http::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Sends a token request's head one byte every 100 ms, for at most `give_up`; returns how
/// long the server kept the connection open, or `None` if it never closed it.
async fn slowloris(addr: SocketAddr, give_up: Duration) -> Option<Duration> {
    let head = b"POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
        .iter()
        .copied()
        .chain(std::iter::repeat(b'a'));
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut probe = [0u8; 64];
    for byte in head {
        if started.elapsed() > give_up {
            return None;
        }
        if stream.write_all(&[byte]).await.is_err() {
            return Some(started.elapsed());
        }
        // Whatever the server sends or does (EOF, a reset), it has ended the request.
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut probe)).await
        {
            let _ = read;
            return Some(started.elapsed());
        }
    }
    None
}

fn limits(header: Duration, idle: Duration, max: usize) -> token::ListenerConfig {
    token::ListenerConfig {
        tls: None,
        limits: ConnectionLimits {
            header_read_timeout: header,
            idle_timeout: idle,
            max_connections: max,
        },
        metrics: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sending_headers_a_byte_at_a_time_are_cut_off_while_others_get_tokens() {
    let service = service(world().finish());
    let mut config = limits(Duration::from_secs(1), Duration::from_secs(30), 64);
    config.metrics = service.metrics().connections.clone();
    let served = listen(service.clone(), config).await;
    // More slow clients than the listener keeps connections.
    let slow: Vec<_> = (0..100)
        .map(|_| tokio::spawn(slowloris(served.addr, Duration::from_secs(15))))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for app in [&ACME, &GLOBEX, &GLOBAL] {
        let (status, body) = token_over_tcp(served.addr, &client_id(app.uid), app.secret).await;
        assert_eq!(status, 200, "a client among 100 slow ones: {body}");
    }
    for s in slow {
        let held = s.await.unwrap();
        assert!(
            held.is_some_and(|d| d < Duration::from_secs(10)),
            "a slow client was held {held:?} with a 1s header-read timeout"
        );
    }
    let closed = |reason| {
        service
            .metrics()
            .connections
            .closed
            .get_or_create(&token::metrics::ClosedLabels { reason })
            .get()
    };
    assert!(closed("header_timeout") > 0, "some reached the timeout");
    // A client sees its connection closed a moment before the server's task for it ends.
    let open = || service.metrics().connections.open.get();
    let deadline = Instant::now() + Duration::from_secs(10);
    while open() != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        open(),
        0,
        "every connection is closed and counted as closed"
    );
    served.shutdown.cancel();
    served.server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_neither_pile_up_nor_keep_others_out() {
    let service = service(world().finish());
    // Timeouts far away: only the cap can help here.
    let mut config = limits(Duration::from_secs(60), Duration::from_secs(60), 200);
    config.metrics = service.metrics().connections.clone();
    let served = listen(service.clone(), config).await;
    let mut idle = Vec::new();
    for _ in 0..2000 {
        idle.push(TcpStream::connect(served.addr).await.unwrap());
    }
    // Every idle one connected; now other clients, while all 2000 are still held.
    for app in [&ACME, &GLOBEX, &GLOBAL] {
        let (status, body) = token_over_tcp(served.addr, &client_id(app.uid), app.secret).await;
        assert_eq!(status, 200, "a client after 2000 idle connections: {body}");
    }
    assert!(
        service.metrics().connections.open.get() <= 200,
        "{} connections open with a cap of 200",
        service.metrics().connections.open.get()
    );
    // The listener closed all but the newest ones.
    let mut closed = 0;
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(
        closed >= 1800,
        "only {closed} of 2000 idle connections were closed"
    );
    drop(idle);
    served.shutdown.cancel();
    served.server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    let service = service(world().finish());
    let mut config = limits(Duration::from_millis(300), Duration::from_secs(2), 64);
    config.metrics = service.metrics().connections.clone();
    let served = listen(service.clone(), config).await;
    let mut stream = TcpStream::connect(served.addr).await.unwrap();
    let request = keep_alive_request(&ACME);
    stream.write_all(&request).await.unwrap();
    read_one_response(&mut stream).await;
    // Idle for longer than the header timeout: still open, and it serves the next request.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stream.write_all(&request).await.unwrap();
    assert!(
        read_one_response(&mut stream)
            .await
            .starts_with("HTTP/1.1 200")
    );
    // Idle past the idle timeout: closed by the server.
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await;
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "{closed:?}");
    let idle_closed = service
        .metrics()
        .connections
        .closed
        .get_or_create(&token::metrics::ClosedLabels {
            reason: "idle_timeout",
        })
        .get();
    assert_eq!(idle_closed, 1);
    served.shutdown.cancel();
    served.server.await.unwrap().unwrap();
}

fn keep_alive_request(app: &App) -> Vec<u8> {
    String::from_utf8(raw_token_request(&client_id(app.uid), app.secret))
        .unwrap()
        .replace("Connection: close", "Connection: keep-alive")
        .into_bytes()
}

/// Reads one response with a Content-Length body; returns its head.
async fn read_one_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed early");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    head
}
