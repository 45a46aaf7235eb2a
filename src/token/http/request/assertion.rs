//! Which client authentication a token request uses: an RFC 7523 client assertion
//! (RFC 7521 §4.2) or a client secret, never both.

use axum::http::HeaderValue;

use super::{ClientCredentials, Form, client_credentials};
use crate::token::{authn::assertion::JWT_BEARER, http::error::OAuthError};

/// An RFC 7523 client assertion (`client_assertion_type` = jwt-bearer).
#[derive(Clone, PartialEq, Eq)]
pub struct Assertion {
    /// `client_id`, if sent (optional when the assertion identifies one app).
    pub client_id: Option<String>,
    pub jwt: String,
}

impl std::fmt::Debug for Assertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assertion")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// How a token request authenticates its client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    Secret(ClientCredentials),
    Assertion(Assertion),
}

impl ClientAuth {
    /// The `client_id` the request names, if any.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            ClientAuth::Secret(c) => Some(&c.client_id),
            ClientAuth::Assertion(a) => a.client_id.as_deref(),
        }
    }
}

/// Client authentication of a token request: a client assertion (RFC 7521 §4.2) or a secret
/// (header or body), exactly one.
pub fn client_auth(
    authorization: Option<&HeaderValue>,
    form: &Form,
) -> Result<ClientAuth, OAuthError> {
    let assertion_type = form.get("client_assertion_type");
    let assertion = form.get("client_assertion");
    if assertion_type.is_none() && assertion.is_none() {
        return client_credentials(authorization, form).map(ClientAuth::Secret);
    }
    if authorization.is_some() || form.get("client_secret").is_some() {
        return Err(OAuthError::invalid_request(
            "use one client authentication method: a client assertion or a client secret, not both",
        ));
    }
    if assertion_type != Some(JWT_BEARER) {
        return Err(OAuthError::invalid_request(format!(
            "client_assertion_type must be {}",
            JWT_BEARER
        )));
    }
    let Some(jwt) = assertion else {
        return Err(OAuthError::invalid_request("client_assertion is required"));
    };
    Ok(ClientAuth::Assertion(Assertion {
        client_id: form.get("client_id").map(str::to_owned),
        jwt: jwt.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::http::request::parse_form;

    fn auth(header: Option<&str>, body: &str) -> Result<ClientAuth, OAuthError> {
        let header = header.map(|h| HeaderValue::from_str(h).unwrap());
        client_auth(header.as_ref(), &parse_form(body.as_bytes()).unwrap())
    }

    const TYPE: &str =
        "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

    #[test]
    fn an_assertion_with_or_without_client_id() {
        let Ok(ClientAuth::Assertion(a)) = auth(None, &format!("{TYPE}&client_assertion=a.b.c"))
        else {
            panic!("an assertion")
        };
        assert_eq!((a.client_id, a.jwt.as_str()), (None, "a.b.c"));
        let Ok(ClientAuth::Assertion(a)) = auth(
            None,
            &format!("{TYPE}&client_assertion=a.b.c&client_id=m2m_1"),
        ) else {
            panic!("an assertion")
        };
        assert_eq!(a.client_id.as_deref(), Some("m2m_1"));
        assert!(
            !format!("{a:?}").contains("a.b.c"),
            "Debug hides the assertion"
        );
    }

    #[test]
    fn one_method_only_and_a_known_assertion_type() {
        let code = |r: Result<ClientAuth, OAuthError>| r.err().map(|e| e.code.as_str());
        assert_eq!(
            code(auth(
                Some("Basic bTJtXzE6cw=="),
                &format!("{TYPE}&client_assertion=a.b.c")
            )),
            Some("invalid_request")
        );
        assert_eq!(
            code(auth(
                None,
                &format!("{TYPE}&client_assertion=a.b.c&client_id=x&client_secret=s")
            )),
            Some("invalid_request")
        );
        assert_eq!(
            code(auth(
                None,
                "client_assertion_type=urn%3Asaml&client_assertion=x"
            )),
            Some("invalid_request")
        );
        assert_eq!(code(auth(None, TYPE)), Some("invalid_request"));
        assert!(matches!(
            auth(None, "client_id=m2m_1&client_secret=s"),
            Ok(ClientAuth::Secret(_))
        ));
    }
}
