use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A tenant: the `org_code` its apps' tokens carry, the namespaces whose M2MApps may bind to it,
/// an optional ceiling on the scopes those apps may be granted, and a suspend switch.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "m2m.dev",
    version = "v1alpha1",
    kind = "Organization",
    plural = "organizations",
    shortname = "org",
    category = "m2m",
    status = "OrganizationStatus",
    doc = "A tenant whose M2M apps get tokens carrying its org_code.",
    printcolumn = r#"{"name":"Code","type":"string","jsonPath":".status.code","description":"Effective org_code"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspended","description":"Tokens refused for every app of the organization"}"#,
    printcolumn = r#"{"name":"Apps","type":"integer","jsonPath":".status.apps","description":"M2MApps bound to the organization"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = kube::core::Rule::new(
        "(has(self.spec.code) ? self.spec.code : self.metadata.name) == (has(oldSelf.spec.code) ? oldSelf.spec.code : oldSelf.metadata.name)"
    )
    .message("spec.code is immutable: the effective code (spec.code, or metadata.name when unset) cannot change")
    .field_path(".spec.code"),
)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationSpec {
    /// The `org_code` claim of every token issued to this organization's apps. Defaults to
    /// `metadata.name`. 1-64 characters of letters, digits, `_` and `-` (for example `org_123`).
    /// Immutable once the Organization exists. Unique across Organizations: a later Organization
    /// repeating a code is not Ready (reason DuplicateCode) and its apps get no tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"), length(min = 1, max = 64))]
    pub code: Option<String>,

    /// Human-readable name, for people only (at most 256 characters). Never put into tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,

    /// Namespaces whose M2MApps may bind to this organization. Combined with
    /// `namespaceSelector` (either one allowing a namespace is enough). When neither is set, no
    /// namespace may bind. At most 256 namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 256),
        inner(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(min = 1, max = 63)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub namespaces: Option<Vec<String>>,

    /// Label selector over Namespaces whose M2MApps may bind to this organization. `{}` selects
    /// every namespace. Combined with `namespaces`. At most 32 `matchLabels` and 16
    /// `matchExpressions` of at most 64 values each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Optional ceiling: apps of this organization can never be granted a scope outside this
    /// list. An app asking for more is not Ready (reason ScopesNotAllowed). Unset: no ceiling.
    /// At most 64 scopes of at most 128 characters each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 64),
        inner(regex(pattern = r#"^[!#-\[\]-~]+$"#), length(min = 1, max = 128)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub allowed_scopes: Option<Vec<String>>,

    /// When true, the token endpoint refuses every app of this organization within seconds.
    /// Credentials are kept, so setting it back to false restores access.
    #[serde(default)]
    pub suspended: bool,

    /// Optional cap on the tokens of all this organization's apps together, per minute and/or
    /// per day, counted across all replicas like an app's quota. An app is refused once its own
    /// quota or its organization's is used up (in `Enforce` mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<super::QuotaSpec>,
}

/// Observed state of an Organization.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationStatus {
    /// The effective code (`spec.code`, or `metadata.name` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub code: Option<String>,

    /// Number of M2MApps bound to this organization.
    #[serde(default)]
    pub apps: i32,

    /// The organization's quota in effect, and whether it was exceeded recently (absent without
    /// `spec.quota`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<super::QuotaStatus>,

    /// `Ready` condition: whether the organization's code is in effect, and why not. At most 8
    /// conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 8),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"])
    )]
    pub conditions: Vec<Condition>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Organization {
    /// The effective `org_code`: `spec.code`, or the object's name.
    pub fn effective_code(&self) -> &str {
        self.spec
            .code
            .as_deref()
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }
}
