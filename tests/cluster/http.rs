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
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
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
