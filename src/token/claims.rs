//! The access token's claims (RFC 9068 profile): what a request may get, decided purely from the
//! client's grant and the request. Request parameters other than `scope`, `audience` and
//! `resource` have no effect; `org_code`, `sub`, `client_id` and `iss` come only from the server.

use serde::{Deserialize, Serialize};

use super::http::{
    error::{ErrorCode, OAuthError},
    request::TokenRequest,
};
use crate::{api::M2MApp, tenancy::Grant};

/// `aud`: one string or several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn values(&self) -> Vec<&str> {
        match self {
            Audience::One(a) => vec![a.as_str()],
            Audience::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub client_id: String,
    pub azp: String,
    pub aud: Audience,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub gty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_code: Option<String>,
}

/// What the token will carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted {
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
}

/// Narrows the grant to the request: every requested scope must be granted (`invalid_scope`),
/// every requested audience must be one of the app's (`invalid_target`).
pub fn narrow(grant: &Grant, app: &M2MApp, request: &TokenRequest) -> Result<Granted, OAuthError> {
    let scopes = match &request.scope {
        None => grant.scopes.clone(),
        Some(requested) => {
            if let Some(extra) = requested.iter().find(|s| !grant.scopes.contains(s)) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!("scope {extra:?} is not granted to this client"),
                ));
            }
            let mut scopes: Vec<String> = grant
                .scopes
                .iter()
                .filter(|s| requested.contains(s))
                .cloned()
                .collect();
            scopes.dedup();
            scopes
        }
    };
    let audiences = if request.audiences.is_empty() {
        app.spec.audiences.clone()
    } else {
        if let Some(extra) = request
            .audiences
            .iter()
            .find(|a| !app.spec.audiences.contains(a))
        {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                format!("audience {extra:?} is not allowed for this client"),
            ));
        }
        request.audiences.clone()
    };
    Ok(Granted { scopes, audiences })
}

/// The claims for a token issued at `now` (Unix seconds).
pub fn claims(
    issuer: &str,
    client_id: &str,
    org_code: Option<&str>,
    granted: &Granted,
    now: i64,
    lifetime_secs: i64,
    jti: String,
) -> AccessClaims {
    let aud = match granted.audiences.as_slice() {
        [one] => Audience::One(one.clone()),
        many => Audience::Many(many.to_vec()),
    };
    AccessClaims {
        iss: issuer.to_owned(),
        sub: client_id.to_owned(),
        client_id: client_id.to_owned(),
        azp: client_id.to_owned(),
        aud,
        iat: now,
        nbf: now,
        exp: now + lifetime_secs,
        jti,
        scope: (!granted.scopes.is_empty()).then(|| granted.scopes.join(" ")),
        gty: "client_credentials".to_owned(),
        org_code: org_code.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::M2MAppSpec;

    fn app() -> M2MApp {
        M2MApp::new(
            "a",
            M2MAppSpec {
                audiences: vec!["api".into(), "billing".into()],
                ..Default::default()
            },
        )
    }

    fn grant() -> Grant {
        Grant {
            org_code: Some("org_1".into()),
            scopes: vec!["read".into(), "write".into()],
        }
    }

    fn req(scope: Option<&[&str]>, aud: &[&str]) -> TokenRequest {
        TokenRequest {
            scope: scope.map(|s| s.iter().map(|x| x.to_string()).collect()),
            audiences: aud.iter().map(|x| x.to_string()).collect(),
        }
    }

    #[test]
    fn defaults_to_everything_granted() {
        let g = narrow(&grant(), &app(), &req(None, &[])).unwrap();
        assert_eq!(
            g,
            Granted {
                scopes: vec!["read".into(), "write".into()],
                audiences: vec!["api".into(), "billing".into()]
            }
        );
    }

    #[test]
    fn narrows_scopes_and_audiences() {
        let g = narrow(&grant(), &app(), &req(Some(&["write"]), &["billing"])).unwrap();
        assert_eq!(g.scopes, ["write"]);
        assert_eq!(g.audiences, ["billing"]);
    }

    #[test]
    fn refuses_more_than_granted() {
        assert_eq!(
            narrow(&grant(), &app(), &req(Some(&["admin"]), &[]))
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            narrow(&grant(), &app(), &req(None, &["evil"]))
                .unwrap_err()
                .code,
            ErrorCode::InvalidTarget
        );
    }

    #[test]
    fn claims_follow_rfc9068_and_the_contract() {
        let g = Granted {
            scopes: vec![],
            audiences: vec!["api".into()],
        };
        let c = claims("https://iss", "m2m_1", None, &g, 100, 60, "j".into());
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["aud"], "api");
        assert_eq!(v["exp"], 160);
        assert_eq!(v["gty"], "client_credentials");
        assert!(v.get("scope").is_none() && v.get("org_code").is_none());
        let g = Granted {
            scopes: vec!["a".into(), "b".into()],
            audiences: vec!["x".into(), "y".into()],
        };
        let v = serde_json::to_value(claims("i", "m2m_1", Some("org_1"), &g, 0, 1, "j".into()))
            .unwrap();
        assert_eq!(v["aud"], serde_json::json!(["x", "y"]));
        assert_eq!(v["scope"], "a b");
        assert_eq!(v["org_code"], "org_1");
        assert_eq!(
            (
                v["sub"].as_str(),
                v["client_id"].as_str(),
                v["azp"].as_str()
            ),
            (Some("m2m_1"), Some("m2m_1"), Some("m2m_1"))
        );
    }
}
