//! Schema patterns and limits shared by both kinds, and the pure checks the operator applies to
//! the same values (scope and audience syntax), so the API server and the token endpoint agree.

/// RFC 6749 §3.3 `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`: printable ASCII except space,
/// `"` and `\`.
pub const SCOPE_TOKEN_PATTERN: &str = r#"^[!#-\[\]-~]+$"#;
/// An audience: printable ASCII without spaces (the Secret lists audiences space-separated).
pub const AUDIENCE_PATTERN: &str = r"^[!-~]+$";
/// An Organization code: the `org_code` claim.
pub const ORG_CODE_PATTERN: &str = r"^[A-Za-z0-9_-]{1,64}$";
/// RFC 1123 label (namespace names).
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// RFC 1123 subdomain (Secret and Organization names).
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Longest accepted scope token.
pub const MAX_SCOPE_LEN: usize = 128;
/// Most scopes one app or organization may list.
pub const MAX_SCOPES: usize = 64;
/// Longest accepted audience.
pub const MAX_AUDIENCE_LEN: usize = 256;
/// Most audiences one app may list.
pub const MAX_AUDIENCES: usize = 16;

/// Whether `s` is an RFC 6749 scope-token.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SCOPE_LEN
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Whether `s` is an acceptable audience value.
pub fn is_audience(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_AUDIENCE_LEN && s.bytes().all(|b| (0x21..=0x7E).contains(&b))
}

/// Whether `s` is an acceptable Organization code.
pub fn is_org_code(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_tokens_follow_rfc6749() {
        for ok in [
            "read:users",
            "write:flags",
            "a",
            "x.y/z",
            "!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
        ] {
            assert!(is_scope_token(ok), "{ok}");
        }
        for bad in [
            "",
            "two words",
            "quote\"",
            "back\\slash",
            "tab\t",
            "é",
            &"a".repeat(129),
        ] {
            assert!(!is_scope_token(bad), "{bad}");
        }
    }

    #[test]
    fn org_codes() {
        assert!(is_org_code("org_123"));
        assert!(is_org_code("Acme-Corp"));
        assert!(!is_org_code(""));
        assert!(!is_org_code("org 123"));
        assert!(!is_org_code(&"a".repeat(65)));
    }

    #[test]
    fn audiences() {
        assert!(is_audience("https://api.example.com"));
        assert!(!is_audience("two words"));
        assert!(!is_audience(""));
    }
}
