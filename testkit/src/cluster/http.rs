//! Plain HTTP against a running operator, with curl (as users do), and token verification with
//! an independent JWT library against the endpoint's own JWKS.

use std::process::Command;

use serde_json::Value;

/// POSTs a form with optional Basic credentials; returns the status and the JSON body.
pub async fn post_form(
    url: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut args: Vec<String> = vec![
        "-s".into(),
        "-w".into(),
        "\n%{http_code}".into(),
        "--max-time".into(),
        "10".into(),
    ];
    if let Some((id, secret)) = basic {
        args.push("-u".into());
        args.push(format!("{id}:{secret}"));
    }
    for (k, v) in form {
        args.push("--data-urlencode".into());
        args.push(format!("{k}={v}"));
    }
    args.push(url.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl").args(&args).output().expect("curl")
    })
    .await
    .expect("curl task");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let code = code.trim().parse().unwrap_or(0);
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if code == 200 {
        if let Some(token) = body["access_token"].as_str() {
            crate::cluster::common::watch(token);
        }
    } else {
        crate::cluster::common::error_body(&body.to_string());
    }
    (code, body)
}

/// POSTs raw bytes with these extra headers and Basic credentials; returns the status and body.
pub async fn post_raw(
    url: &str,
    headers: &[&str],
    (id, secret): (&str, &str),
    body: &[u8],
) -> (u16, String) {
    let mut args: Vec<String> = vec![
        "-s".into(),
        "-w".into(),
        "\n%{http_code}".into(),
        "--max-time".into(),
        "10".into(),
        "-u".into(),
        format!("{id}:{secret}"),
        "--data-binary".into(),
        "@-".into(),
    ];
    for h in headers {
        args.push("-H".into());
        args.push((*h).to_owned());
    }
    args.push(url.to_owned());
    let body = body.to_vec();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new("curl")
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("curl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&body)
            .expect("write body");
        child.wait_with_output().expect("curl output")
    })
    .await
    .expect("curl task");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    crate::cluster::common::error_body(body);
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

pub async fn get_json(url: &str) -> Value {
    let url = url.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-s", "--max-time", "10", &url])
            .output()
            .expect("curl")
    })
    .await
    .expect("curl task");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Requests a token with client_secret_basic.
pub async fn token(base: &str, id: &str, secret: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    post_form(&format!("{base}/oauth2/token"), Some((id, secret)), &form).await
}

/// Verifies `token` with `jsonwebtoken` against the JWKS served now; returns the claims.
pub async fn verify(base: &str, issuer: &str, token: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(get_json(&format!("{base}/.well-known/jwks.json")).await)
            .map_err(|e| e.to_string())?;
    let kid = header.kid.clone().ok_or("no kid")?;
    let jwk = set
        .find(&kid)
        .ok_or_else(|| format!("kid {kid} not in the JWKS"))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

/// The `kid` of a token's header.
pub fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .ok()
        .and_then(|h| h.kid)
        .unwrap_or_default()
}

/// A token request on its own connection (`Connection: close`) whose headers and first half of
/// the body are sent, the rest held back: a request the server has started and must finish.
pub struct HeldRequest {
    stream: tokio::net::TcpStream,
    rest: Vec<u8>,
}

fn token_request(id: &str, secret: &str) -> (Vec<u8>, Vec<u8>) {
    use base64::Engine;
    let body = b"grant_type=client_credentials".to_vec();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let head = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    (head.into_bytes(), body)
}

/// The status code of a raw HTTP/1.1 response, or what went wrong reading it.
async fn read_status(stream: &mut tokio::net::TcpStream) -> Result<u16, String> {
    use tokio::io::AsyncReadExt;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("reading the response: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no HTTP response (got {} bytes)", response.len()))
}

impl HeldRequest {
    pub async fn start(port: u16, id: &str, secret: &str) -> Self {
        use tokio::io::AsyncWriteExt;
        let (head, body) = token_request(id, secret);
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to the token endpoint");
        let half = body.len() / 2;
        stream.write_all(&head).await.expect("send headers");
        stream.write_all(&body[..half]).await.expect("send half");
        stream.flush().await.expect("flush");
        Self {
            stream,
            rest: body[half..].to_vec(),
        }
    }

    /// Sends the rest of the body; returns the response status.
    pub async fn finish(mut self) -> Result<u16, String> {
        use tokio::io::AsyncWriteExt;
        self.stream
            .write_all(&self.rest)
            .await
            .map_err(|e| format!("sending the rest of the body: {e}"))?;
        read_status(&mut self.stream).await
    }
}

/// What happened to one token request on a fresh connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The connection was refused: the request never started.
    Refused,
    /// A complete response with this status.
    Status(u16),
    /// The request was sent and then lost: the failure a draining server must never cause.
    Dropped(String),
}

/// One complete token request on a fresh connection.
pub async fn token_once(port: u16, id: &str, secret: &str) -> Outcome {
    use tokio::io::AsyncWriteExt;
    let (head, body) = token_request(id, secret);
    let mut stream = match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => s,
        Err(_) => return Outcome::Refused,
    };
    if let Err(e) = stream.write_all(&[head, body].concat()).await {
        return Outcome::Dropped(format!("sending: {e}"));
    }
    match read_status(&mut stream).await {
        Ok(code) => Outcome::Status(code),
        Err(e) => Outcome::Dropped(e),
    }
}
