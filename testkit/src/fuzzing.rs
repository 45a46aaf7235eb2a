//! Fuzz targets: the parsers of everything an untrusted party hands the operator. Each takes
//! arbitrary bytes, must never panic, and asserts what must hold for any input. Run by
//! `cargo fuzz` (`fuzz/`, `hack/fuzz.sh`) and, for the kept regression inputs under
//! `fuzz/regressions/`, by `cargo test` (`tests/fuzz_regressions.rs`). Not used by the operator.

// A fuzz target reports a broken invariant by panicking.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use axum::http::HeaderValue;

use m2m_operator::{
    api::{
        M2MApp, Organization, duration,
        validation::{is_audience, is_scope_token},
    },
    tenancy::{self, OrgState},
    token::http::request::{self, parse_form},
};

/// A fuzz target: arbitrary bytes in, a panic when an invariant breaks.
pub type Target = fn(&[u8]);

/// The targets by name (the file names under `fuzz/fuzz_targets/` and `fuzz/regressions/`).
pub const TARGETS: [(&str, Target); 3] = [
    ("token_request", token_request),
    ("duration", duration),
    ("crd_spec", crd_spec),
];

/// A token or introspection request: the first line is the `Authorization` header value, the
/// rest the form body.
pub fn token_request(data: &[u8]) {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    let header = header.and_then(|h| HeaderValue::from_bytes(h).ok());
    let Ok(form) = parse_form(body) else {
        return;
    };
    match request::client_credentials(header.as_ref(), &form) {
        Ok(credentials) => {
            assert!(!credentials.client_id.is_empty() && !credentials.secret.is_empty());
            assert_eq!(credentials.basic, header.is_some());
        }
        Err(error) => {
            // The error says nothing about the secret: another secret gives the same error.
            let mut other = form_urlencoded::Serializer::new(String::new());
            for (name, value) in form.pairs() {
                let value = if name == "client_secret" && !value.is_empty() {
                    "other"
                } else {
                    value
                };
                other.append_pair(name, value);
            }
            let other = parse_form(other.finish().as_bytes()).expect("re-encoded form parses");
            let again = request::client_credentials(header.as_ref(), &other).expect_err(
                "the secret's value does not decide whether the request is well-formed",
            );
            assert_eq!(error.description, again.description);
        }
    }
    if let Ok(request) = request::token_request(&form) {
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
        for scope in request.scope.iter().flatten() {
            assert!(is_scope_token(scope), "{scope:?}");
        }
        for audience in &request.audiences {
            assert!(is_audience(audience), "{audience:?}");
        }
    }
    let _ = request::introspection_token(&form);
}

/// A duration field (`tokenLifetime`, `rotation.every`, `rotation.gracePeriod`, flags).
pub fn duration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = duration::parse(text) {
        // The value round-trips through whole nanoseconds.
        if let Ok(nanos) = u64::try_from(parsed.as_nanos()) {
            assert_eq!(duration::parse(&format!("{nanos}ns")), Ok(parsed));
        }
    }
}

/// An M2MApp or Organization as the API server might hand it over (the schema is not trusted:
/// objects stored before a CRD change, or by an older version, reach the operator too).
pub fn crd_spec(data: &[u8]) {
    if let Ok(org) = serde_json::from_slice::<Organization>(data) {
        let _ = org.effective_code();
        let _ = tenancy::binds_no_namespace(&org.spec);
        let _ = tenancy::namespace_allowed(&org.spec, "tenant", None);
        let app: M2MApp = match serde_json::from_value(serde_json::json!({
            "apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
            "metadata": {"name": "a", "namespace": "tenant"},
            "spec": {"organizationRef": {"name": "o"}, "audiences": ["api"], "scopes": ["read"]},
        })) {
            Ok(app) => app,
            Err(_) => return,
        };
        if let Ok(grant) = tenancy::grant(
            &app,
            Some((&org, &OrgState::Active)),
            None,
            &tenancy::GlobalApps::anywhere(),
        ) {
            assert_eq!(grant.org_code.as_deref(), Some(org.effective_code()));
        }
    }
    if let Ok(app) = serde_json::from_slice::<M2MApp>(data) {
        let _ = app.secret_name();
        let _ = duration::parse(&app.spec.token_lifetime);
        if let Some(rotation) = &app.spec.rotation {
            let _ = duration::parse(&rotation.grace_period);
            rotation.every.as_deref().map(duration::parse);
        }
        if let Ok(grant) = tenancy::grant(&app, None, None, &tenancy::GlobalApps::anywhere()) {
            assert!(grant.org_code.is_none() || app.spec.organization_ref.is_some());
        }
        let _ = tenancy::block(&app, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_accept_typical_inputs() {
        token_request(b"Basic bTJtXzE6czNjcmV0\ngrant_type=client_credentials&scope=read");
        token_request(b"grant_type=client_credentials&client_id=a&client_secret=b");
        duration(b"1h30m");
        crd_spec(br#"{"apiVersion":"m2m.dev/v1alpha1","kind":"M2MApp","metadata":{"name":"a"},"spec":{"audiences":["x"]}}"#);
    }
}
