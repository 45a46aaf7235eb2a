//! The plain-HTTP token listener over real TCP: concurrent keep-alive connections are all
//! answered, and a shutdown closes the listening socket at once while in-flight requests finish.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use m2m_operator::{credentials::generate::client_id, token};
use m2m_operator_testkit::token_http::{ACME, listen, service, world};
use tokio_util::sync::CancellationToken;

/// The head of a token request whose body (`grant_type=client_credentials`) follows.
fn request_head(keep_alive: bool) -> String {
    let auth = STANDARD.encode(format!("{}:{}", client_id(ACME.uid), ACME.secret));
    format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\
         Connection: {}\r\n\r\n",
        if keep_alive { "keep-alive" } else { "close" }
    )
}

const BODY: &str = "grant_type=client_credentials";

/// Reads one HTTP/1.1 response with a Content-Length body; returns the status line.
fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "connection closed early"
        );
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
        .expect("content-length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head.lines().next().unwrap().to_owned()
}

async fn start() -> (
    SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), token::ServeError>>,
) {
    let served = listen(service(world().finish()), Default::default()).await;
    (served.addr, served.shutdown, served.server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_keep_alive_connection_is_answered() {
    let (addr, shutdown, server) = start().await;
    // More keep-alive connections than runtime workers, several requests each.
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                (0..5)
                    .map(|_| {
                        stream
                            .write_all(format!("{}{BODY}", request_head(true)).as_bytes())
                            .unwrap();
                        read_response(&mut stream)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for client in clients {
        for status in client.join().unwrap() {
            assert_eq!(status, "HTTP/1.1 200 OK");
        }
    }
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_then_refuses_connections() {
    let (addr, shutdown, server) = start().await;
    // A request whose body has not arrived yet when the shutdown begins.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request_head(false).as_bytes()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !server.is_finished(),
        "the listener waits for the in-flight request"
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "new connections are refused while the in-flight request is still open"
    );
    stream.write_all(BODY.as_bytes()).unwrap();
    let status = tokio::task::spawn_blocking(move || read_response(&mut stream))
        .await
        .unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the listener stops once the request is answered")
        .unwrap()
        .unwrap();
}
