//! OAuth 2.0 error responses (RFC 6749 §5.2).

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// The `error` codes the endpoints return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// RFC 8707: an `audience`/`resource` the client may not get.
    InvalidTarget,
    /// Throttled (429) or overloaded (503).
    TemporarilyUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// An OAuth error with its HTTP details. Descriptions never contain a secret or a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
    pub status: StatusCode,
    /// `WWW-Authenticate: Basic` on a 401 when the client used HTTP Basic.
    pub basic_challenge: bool,
    pub retry_after: Option<u64>,
    /// The metrics and audit `outcome` when it is not the error code (`quota_exceeded`).
    pub outcome: Option<&'static str>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        let status = match code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            code,
            description: description.into(),
            status,
            basic_challenge: false,
            retry_after: None,
            outcome: None,
        }
    }

    /// The `outcome` of metrics and audit: the error code, or what it stands for.
    pub fn outcome(&self) -> &'static str {
        self.outcome.unwrap_or(self.code.as_str())
    }

    /// 429 with `Retry-After`: a quota of the app or its organization is used up until the
    /// window ends. The error is `temporarily_unavailable` as for throttling (RFC 6749 has no
    /// quota error); the outcome is `quota_exceeded`.
    pub fn quota_exceeded(retry_after: u64, description: String) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(retry_after.max(1)),
            outcome: Some("quota_exceeded"),
            ..Self::new(ErrorCode::TemporarilyUnavailable, description)
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_client`; with the Basic challenge when the client used HTTP Basic.
    pub fn invalid_client(basic: bool) -> Self {
        Self {
            basic_challenge: basic,
            ..Self::new(ErrorCode::InvalidClient, "client authentication failed")
        }
    }

    /// 429 with `Retry-After`.
    pub fn throttled(retry_after: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                ErrorCode::TemporarilyUnavailable,
                "too many failed attempts; retry later",
            )
        }
    }

    /// A body that could not be read: 413 when it is larger than
    /// [`crate::token::MAX_BODY_BYTES`], 400 otherwise.
    pub fn unreadable_body(rejection: &axum::extract::rejection::BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                ..Self::invalid_request(format!(
                    "the request body is larger than {} bytes",
                    crate::token::MAX_BODY_BYTES
                ))
            }
        } else {
            Self::invalid_request("the request body could not be read")
        }
    }

    /// 503 with `Retry-After`.
    /// The request took longer than `--request-timeout`.
    pub fn timed_out() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                ErrorCode::TemporarilyUnavailable,
                "the request took too long; retry later",
            )
        }
    }

    pub fn overloaded() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                ErrorCode::TemporarilyUnavailable,
                "the server is busy; retry later",
            )
        }
    }
}

/// Headers every response of the token and introspection endpoints carries.
pub fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body =
            serde_json::json!({"error": self.code.as_str(), "error_description": self.description});
        let mut response = (self.status, Json(body)).into_response();
        no_store(&mut response);
        if self.basic_challenge && self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="m2m-operator", charset="UTF-8""#),
            );
        }
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
