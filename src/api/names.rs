//! Label and annotation keys, names and defaults of the public contract, in one place.

/// Field manager for every write the operator makes (server-side apply).
pub const FIELD_MANAGER: &str = "m2m-operator";

/// Label on every Secret the operator manages.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "m2m-operator";
/// Label naming the M2MApp a generated Secret belongs to.
pub const LABEL_APP: &str = "m2m.dev/app";

/// Annotation on the generated Secret: the rotation revision of the secret it holds.
pub const ANNOTATION_REVISION: &str = "m2m.dev/revision";
/// Annotation on an M2MApp: each new distinct value rotates the secret once.
pub const ANNOTATION_ROTATE: &str = "m2m.dev/rotate";
/// Annotation on an M2MApp: each new distinct value ends the previous secret's grace period.
pub const ANNOTATION_REVOKE_PREVIOUS: &str = "m2m.dev/revoke-previous";

/// Keys of the generated Secret.
pub mod secret_keys {
    pub const CLIENT_ID: &str = "client_id";
    pub const CLIENT_SECRET: &str = "client_secret";
    pub const TOKEN_URL: &str = "token_url";
    pub const ISSUER: &str = "issuer";
    pub const AUDIENCE: &str = "audience";
    pub const SCOPE: &str = "scope";
    pub const ORG_CODE: &str = "org_code";
}

/// Default token lifetime when `spec.tokenLifetime` is not set.
pub const DEFAULT_TOKEN_LIFETIME: &str = "1h";
/// Default grace period of the previous secret after a rotation.
pub const DEFAULT_GRACE_PERIOD: &str = "1h";
/// Suffix of the default Secret name: `<app name>-credentials`.
pub const DEFAULT_SECRET_SUFFIX: &str = "-credentials";
