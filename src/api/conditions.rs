//! Condition types and reasons, as the contract names them.

/// The one condition type both kinds report.
pub const READY: &str = "Ready";

/// Reasons of an M2MApp's `Ready` condition.
pub mod app_reasons {
    /// Credentials are in the Secret and the token endpoint accepts them.
    pub const CREDENTIALS_ISSUED: &str = "CredentialsIssued";
    /// `spec.organizationRef` names an Organization that does not exist.
    pub const ORGANIZATION_NOT_FOUND: &str = "OrganizationNotFound";
    /// The Organization exists but is not Ready (for example a duplicated code).
    pub const ORGANIZATION_NOT_READY: &str = "OrganizationNotReady";
    /// The Organization does not allow apps in this namespace.
    pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
    /// `spec.scopes` asks for a scope outside the Organization's `allowedScopes`.
    pub const SCOPES_NOT_ALLOWED: &str = "ScopesNotAllowed";
    /// The target Secret exists and is not controlled by this M2MApp.
    pub const SECRET_CONFLICT: &str = "SecretConflict";
    /// `spec.disabled` is true: credentials are kept, tokens are refused.
    pub const DISABLED: &str = "Disabled";
    /// The Organization is suspended: credentials are kept, tokens are refused.
    pub const ORGANIZATION_SUSPENDED: &str = "OrganizationSuspended";
    /// The API server refused to write the app's Secret (the message says what it said); the
    /// operator retries with a growing delay.
    pub const SECRET_WRITE_FAILED: &str = "SecretWriteFailed";
    /// `spec.secretTemplate` sets a label or annotation key the operator does not allow on
    /// Secrets (`--secret-template-allowed-keys`); the Secret is not written.
    pub const SECRET_TEMPLATE_NOT_ALLOWED: &str = "SecretTemplateNotAllowed";
}

/// Reasons of an Organization's `Ready` condition.
pub mod org_reasons {
    /// The Organization's code is in effect.
    pub const ACTIVE: &str = "Active";
    /// Another, older Organization already uses this code.
    pub const DUPLICATE_CODE: &str = "DuplicateCode";
    /// Neither `namespaces` nor `namespaceSelector` is set: no namespace may bind.
    pub const NO_NAMESPACES: &str = "NoNamespacesAllowed";
    /// `spec.namespaceSelector` cannot be evaluated (for example an unknown operator).
    pub const INVALID_NAMESPACE_SELECTOR: &str = "InvalidNamespaceSelector";
    /// `spec.suspended` is true.
    pub const SUSPENDED: &str = "Suspended";
}
