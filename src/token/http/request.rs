//! Parsing token and introspection requests: strict form bodies and client authentication
//! (RFC 6749 §2.3.1, §3.2, §4.4). Pure functions over bytes and header values (fuzzed).

use axum::http::HeaderValue;
use headers::{Authorization, Header, authorization::Basic};
use percent_encoding::percent_decode;

use super::error::{ErrorCode, OAuthError};
use crate::api::validation::{is_audience, is_scope_token};

mod assertion;

pub use self::assertion::{Assertion, ClientAuth, client_auth};

/// Parameters that may appear more than once (RFC 8707 allows several resources).
const REPEATABLE: [&str; 2] = ["resource", "audience"];

/// A decoded `application/x-www-form-urlencoded` body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form(Vec<(String, String)>);

/// Decodes one form component: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn decode_component(raw: &[u8]) -> Option<String> {
    if !raw.iter().any(|b| *b == b'+' || *b == b'%') {
        // Nothing to decode (the usual client id, secret and grant type).
        return std::str::from_utf8(raw).ok().map(str::to_owned);
    }
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let bytes: Vec<u8> = percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes).ok()
}

/// Parses a form body strictly: valid UTF-8 after decoding, no control characters, and no
/// parameter repeated except `resource` and `audience`.
pub fn parse_form(body: &[u8]) -> Result<Form, OAuthError> {
    let mut pairs = Vec::new();
    for part in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match part.iter().position(|b| *b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        let (Some(name), Some(value)) = (decode_component(name), decode_component(value)) else {
            return Err(OAuthError::invalid_request(
                "the body is not valid UTF-8 form encoding",
            ));
        };
        if name.chars().chain(value.chars()).any(char::is_control) {
            return Err(OAuthError::invalid_request(
                "control characters in a parameter",
            ));
        }
        pairs.push((name, value));
    }
    let form = Form(pairs);
    for (i, (name, _)) in form.0.iter().enumerate() {
        if !REPEATABLE.contains(&name.as_str()) && form.0[..i].iter().any(|(n, _)| n == name) {
            return Err(OAuthError::invalid_request(format!(
                "parameter {name:?} is repeated"
            )));
        }
    }
    Ok(form)
}

impl Form {
    /// Every parameter, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The value of a parameter that appears at most once (empty values count as absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable parameter.
    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// How the client authenticated.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: String,
    /// True for `client_secret_basic`.
    pub basic: bool,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("basic", &self.basic)
            .finish_non_exhaustive()
    }
}

/// Client authentication from the `Authorization` header or the body, never both.
pub fn client_credentials(
    authorization: Option<&HeaderValue>,
    form: &Form,
) -> Result<ClientCredentials, OAuthError> {
    let body_secret = form.get("client_secret");
    if let Some(header) = authorization {
        let Ok(basic) = Authorization::<Basic>::decode(&mut std::iter::once(header)) else {
            // A malformed header or another scheme: the client tried to authenticate.
            return Err(OAuthError::invalid_client(true));
        };
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: HTTP Basic or client_secret in the body, not both",
            ));
        }
        // RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
        let (Some(client_id), Some(secret)) = (
            decode_component(basic.username().as_bytes()),
            decode_component(basic.password().as_bytes()),
        ) else {
            return Err(OAuthError::invalid_client(true));
        };
        if let Some(body_id) = form.get("client_id")
            && body_id != client_id
        {
            return Err(OAuthError::invalid_request(
                "client_id in the body differs from HTTP Basic",
            ));
        }
        if client_id.is_empty() || secret.is_empty() {
            return Err(OAuthError::invalid_client(true));
        }
        return Ok(ClientCredentials {
            client_id,
            secret,
            basic: true,
        });
    }
    match (form.get("client_id"), body_secret) {
        (Some(id), Some(secret)) => Ok(ClientCredentials {
            client_id: id.to_owned(),
            secret: secret.to_owned(),
            basic: false,
        }),
        _ => Err(OAuthError::invalid_client(false)),
    }
}

/// A client-credentials token request (RFC 6749 §4.4.2, RFC 8707).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// Requested scopes; `None`: all the client may have.
    pub scope: Option<Vec<String>>,
    /// Requested audiences (`audience` and `resource`); empty: all the client may have.
    pub audiences: Vec<String>,
}

/// Validates the token request parameters.
pub fn token_request(form: &Form) -> Result<TokenRequest, OAuthError> {
    match form.get("grant_type") {
        None => return Err(OAuthError::invalid_request("grant_type is required")),
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "only grant_type=client_credentials is supported",
            ));
        }
    }
    let scope = match form.0.iter().find(|(n, _)| n == "scope") {
        None => None,
        Some((_, value)) => {
            let tokens: Vec<String> = value.split(' ').map(str::to_owned).collect();
            if tokens.iter().any(|t| !is_scope_token(t)) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "scope is not a list of scope-tokens",
                ));
            }
            Some(tokens)
        }
    };
    let mut audiences = Vec::new();
    for value in form.all("audience").chain(form.all("resource")) {
        if !is_audience(value) {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "malformed audience or resource",
            ));
        }
        if !audiences.iter().any(|a| a == value) {
            audiences.push(value.to_owned());
        }
    }
    Ok(TokenRequest { scope, audiences })
}

/// The `token` parameter of an introspection request.
pub fn introspection_token(form: &Form) -> Result<&str, OAuthError> {
    form.get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::STANDARD};

    use super::*;

    fn form(body: &str) -> Form {
        parse_form(body.as_bytes()).unwrap()
    }

    fn basic(user: &str, pass: &str) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "Basic {}",
            STANDARD.encode(format!("{user}:{pass}"))
        ))
        .unwrap()
    }

    #[test]
    fn forms_decode_plus_and_percent() {
        let f = form("grant_type=client_credentials&scope=read%3Ausers+write%3Aflags");
        assert_eq!(f.get("scope"), Some("read:users write:flags"));
    }

    #[test]
    fn forms_refuse_repeats_bad_utf8_and_controls() {
        assert_eq!(
            parse_form(b"scope=a&scope=b").unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert!(parse_form(b"resource=a&resource=b").is_ok());
        assert!(parse_form(b"scope=%FF").is_err());
        assert!(parse_form(b"scope=a%0Ab").is_err());
        assert!(
            parse_form("scope=caf\u{e9}".as_bytes()).is_ok(),
            "UTF-8 is fine in the form layer"
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let f = form("grant_type=client_credentials");
        let c = client_credentials(Some(&basic("m2m_1", "a%2Bb%3Ac+d")), &f).unwrap();
        assert_eq!(
            (c.client_id.as_str(), c.secret.as_str(), c.basic),
            ("m2m_1", "a+b:c d", true)
        );
        assert!(!format!("{c:?}").contains("a+b"), "Debug hides the secret");
    }

    #[test]
    fn post_credentials() {
        let c = client_credentials(None, &form("client_id=m2m_1&client_secret=s")).unwrap();
        assert_eq!(
            (c.client_id.as_str(), c.secret.as_str(), c.basic),
            ("m2m_1", "s", false)
        );
    }

    #[test]
    fn authentication_errors() {
        let both =
            client_credentials(Some(&basic("a", "b")), &form("client_secret=s")).unwrap_err();
        assert_eq!(both.code, ErrorCode::InvalidRequest);
        let bearer =
            client_credentials(Some(&HeaderValue::from_static("Bearer x")), &form("")).unwrap_err();
        assert_eq!(
            (bearer.code, bearer.basic_challenge),
            (ErrorCode::InvalidClient, true)
        );
        let garbage = client_credentials(Some(&HeaderValue::from_static("Basic !!!")), &form(""))
            .unwrap_err();
        assert_eq!(garbage.status, axum::http::StatusCode::UNAUTHORIZED);
        let none = client_credentials(None, &form("client_id=a")).unwrap_err();
        assert_eq!(
            (none.code, none.basic_challenge),
            (ErrorCode::InvalidClient, false)
        );
        let mismatch =
            client_credentials(Some(&basic("a", "b")), &form("client_id=c")).unwrap_err();
        assert_eq!(mismatch.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn token_requests() {
        let r = token_request(&form("grant_type=client_credentials")).unwrap();
        assert_eq!(
            r,
            TokenRequest {
                scope: None,
                audiences: vec![]
            }
        );
        let r = token_request(&form(
            "grant_type=client_credentials&scope=a+b&audience=x&resource=y&resource=x",
        ))
        .unwrap();
        assert_eq!(r.scope, Some(vec!["a".into(), "b".into()]));
        assert_eq!(r.audiences, ["x", "y"]);
        assert_eq!(
            token_request(&form("")).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            token_request(&form("grant_type=password"))
                .unwrap_err()
                .code,
            ErrorCode::UnsupportedGrantType
        );
        assert_eq!(
            token_request(&form("grant_type=client_credentials&scope="))
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            token_request(&form("grant_type=client_credentials&scope=a++b"))
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            token_request(&form("grant_type=client_credentials&scope=caf%C3%A9"))
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            token_request(&form("grant_type=client_credentials&audience=a+b"))
                .unwrap_err()
                .code,
            ErrorCode::InvalidTarget
        );
    }
}
