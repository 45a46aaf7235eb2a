//! A minimal blocking HTTP/1.0 client for probing the operator's listeners: one request per
//! connection, so each probe sees the server's current state and nothing is pooled. (HTTP/1.0
//! keeps responses un-chunked, so the body is everything after the headers.)

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Status code and body of one request.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    parse_response(&response)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not HTTP"))
}

/// Status and body of a raw HTTP response. Pure.
pub fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Some((status, body))
}

pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    request(addr, "GET", path, &[], "")
}

/// The status of a client_credentials token request with this `Authorization` value.
pub fn token_status(addr: SocketAddr, authorization: &str) -> std::io::Result<u16> {
    request(
        addr,
        "POST",
        "/oauth2/token",
        &[
            ("Authorization", authorization),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "grant_type=client_credentials",
    )
    .map(|(status, _)| status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let raw = b"HTTP/1.0 401 Unauthorized\r\ncontent-type: application/json\r\n\r\n{\"error\":\"invalid_client\"}";
        assert_eq!(
            parse_response(raw),
            Some((401, "{\"error\":\"invalid_client\"}".to_owned()))
        );
        assert_eq!(parse_response(b"garbage"), None);
    }
}
