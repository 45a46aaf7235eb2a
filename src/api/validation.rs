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

/// Most labels, and most annotations, one `secretTemplate` may set.
pub const MAX_TEMPLATE_ENTRIES: usize = 32;
/// Longest label value (the API server's own limit).
pub const MAX_LABEL_VALUE_LEN: usize = 63;
/// Longest annotation value one `secretTemplate` may set, in characters.
pub const MAX_ANNOTATION_VALUE_LEN: usize = 4096;
/// Most bytes (keys and values) of a `secretTemplate`'s annotations together: far below the
/// API server's 256 KiB for all of a Secret's annotations.
pub const MAX_TEMPLATE_ANNOTATIONS_BYTES: usize = 16 * 1024;
/// Longest value of an `m2m.dev/*` request annotation kept as written; longer ones are
/// remembered as `sha256:<hex>` of the value (see [`crate::cache`]).
pub const MAX_REQUEST_VALUE_LEN: usize = 128;

/// A label value: empty, or at most 63 letters, digits, `-`, `_`, `.`, beginning and ending
/// with a letter or digit.
pub const LABEL_VALUE_PATTERN: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";

/// CEL over a map: every key is a Kubernetes qualified name (an optional DNS-subdomain prefix
/// of at most 253 characters and `/`, then a name of at most 63 characters of `[A-Za-z0-9]`,
/// `-`, `_`, `.`, beginning and ending alphanumeric), as the API server checks label keys.
pub const LABEL_KEYS_RULE: &str = r"self.all(k, k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$') && (!k.contains('/') || size(k.split('/')[0]) <= 253))";
/// The same for annotation keys, which the API server checks case-insensitively.
pub const ANNOTATION_KEYS_RULE: &str = r"self.all(k, k.lowerAscii().matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$') && (!k.contains('/') || size(k.split('/')[0]) <= 253))";
/// CEL: the annotations' keys and values together take at most
/// [`MAX_TEMPLATE_ANNOTATIONS_BYTES`] bytes.
pub const ANNOTATIONS_SIZE_RULE: &str =
    "self.map(k, size(k) + size(bytes(self[k]))).sum() <= 16384";

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
