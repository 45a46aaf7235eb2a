use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A machine client: the operator generates its `client_id` and `client_secret` into a Secret in
/// this namespace and the token endpoint issues it JWT access tokens, carrying `org_code` when it
/// is bound to an Organization.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "m2m.dev",
    version = "v1alpha1",
    kind = "M2MApp",
    plural = "m2mapps",
    singular = "m2mapp",
    shortname = "m2m",
    category = "m2m",
    namespaced,
    status = "M2MAppStatus",
    doc = "A machine-to-machine OAuth 2.0 client, global or bound to one Organization.",
    printcolumn = r#"{"name":"Org","type":"string","jsonPath":".spec.organizationRef.name","description":"Organization the app is bound to (empty: global)"}"#,
    printcolumn = r#"{"name":"Client-ID","type":"string","jsonPath":".status.clientId"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".status.secretName","description":"Secret holding the credentials"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"integer","jsonPath":".status.rotation.revision","description":"Secret revision: 1 at issue, +1 per rotation"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = kube::core::Rule::new(
    "has(self.organizationRef) == has(oldSelf.organizationRef) && (!has(self.organizationRef) || self.organizationRef.name == oldSelf.organizationRef.name)"
).message("spec.organizationRef is immutable: create a new M2MApp to bind to another organization").field_path(".organizationRef"))]
#[serde(rename_all = "camelCase")]
pub struct M2MAppSpec {
    /// The Organization this app belongs to; its tokens carry that organization's `org_code`.
    /// Absent: a global app whose tokens carry no `org_code`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_ref: Option<OrganizationRef>,

    /// Human-readable name, for people only (at most 256 characters). Never put into tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,

    /// Scopes the app may be granted, each an RFC 6749 scope-token (printable ASCII without
    /// spaces, quotes or backslashes), e.g. `read:users`. A token request may ask for a subset.
    /// At most 64 scopes of at most 128 characters each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(regex(pattern = r#"^[!#-\[\]-~]+$"#), length(min = 1, max = 128)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub scopes: Vec<String>,

    /// The `aud` values the app's tokens may carry: the APIs it may call. At least one. A token
    /// request may pick one with `audience` or `resource`; by default the token carries all.
    /// At most 16 audiences of at most 256 characters each.
    #[schemars(
        length(min = 1, max = 16),
        inner(regex(pattern = r"^[!-~]+$"), length(min = 1, max = 256)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub audiences: Vec<String>,

    /// Lifetime of issued access tokens, as a duration (`15m`, `1h`). Between 1m and 24h.
    #[serde(default = "default_token_lifetime")]
    #[schemars(
        regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$"),
        length(max = 32)
    )]
    #[x_kube(validation = kube::core::Rule::new(
        "duration(self) >= duration('1m') && duration(self) <= duration('24h')"
    ).message("tokenLifetime must be between 1m and 24h"))]
    pub token_lifetime: String,

    /// Name of the Secret the credentials are written to, in this namespace. Default
    /// `<metadata.name>-credentials`. The operator never takes over a Secret it does not control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
        length(min = 1, max = 253)
    )]
    pub secret_name: Option<String>,

    /// Labels and annotations copied onto the generated Secret (for reloaders, backup tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<Box<SecretTemplate>>,

    /// Secret rotation: an optional schedule and the grace period of the previous secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Box<RotationSpec>>,

    /// When true, the token endpoint refuses this app. Credentials are kept.
    #[serde(default)]
    pub disabled: bool,

    /// Optional cap on the tokens this app gets, per minute and/or per day, counted across all
    /// replicas (each replica admits its share: the quota divided by the number of ready
    /// replicas, rounded up). Over it: 429 with `Retry-After` (`Enforce`), or issued and
    /// reported (`Observe`). Unset: no quota of its own (its Organization's may still apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Box<super::QuotaSpec>>,
    /// How the app's client authenticates: a generated client secret (the default when absent),
    /// a ServiceAccount token of this namespace, or its own key (`private_key_jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_authentication: Option<Box<super::ClientAuthentication>>,
}

fn default_token_lifetime() -> String {
    super::names::DEFAULT_TOKEN_LIFETIME.to_owned()
}

fn default_grace_period() -> String {
    super::names::DEFAULT_GRACE_PERIOD.to_owned()
}

/// Reference to a cluster-scoped Organization.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub struct OrganizationRef {
    /// Name of the Organization.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Metadata copied onto the generated Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretTemplate {
    /// Labels added to the Secret. The operator's own labels take precedence. At most 32. Each
    /// key is a qualified name: an optional DNS-subdomain prefix (at most 253 characters) and
    /// `/`, then at most 63 letters, digits, `-`, `_` or `.`, beginning and ending with a letter
    /// or digit (e.g. `example.com/team`). Each value is empty or at most 63 such characters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 32,
        "additionalProperties" = {
            "type": "string",
            "maxLength": 63,
            "pattern": r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
        }
    ))]
    #[x_kube(validation = kube::core::Rule::new(super::validation::LABEL_KEYS_RULE)
        .message("secretTemplate.labels: every key must be a qualified name: an optional DNS subdomain of at most 253 characters and '/', then at most 63 characters of [A-Za-z0-9-_.] beginning and ending with a letter or digit"))]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Secret. The operator's own annotations take precedence. At most
    /// 32; keys are qualified names as for `labels` (the prefix in any case); each value at most
    /// 4096 characters, and all keys and values together at most 16384 bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 32,
        "additionalProperties" = {"type": "string", "maxLength": 4096}
    ))]
    #[x_kube(validation = kube::core::Rule::new(super::validation::ANNOTATION_KEYS_RULE)
        .message("secretTemplate.annotations: every key must be a qualified name: an optional DNS subdomain of at most 253 characters and '/', then at most 63 characters of [A-Za-z0-9-_.] beginning and ending with a letter or digit"))]
    #[x_kube(validation = kube::core::Rule::new(super::validation::ANNOTATIONS_SIZE_RULE)
        .message("secretTemplate.annotations: keys and values together must take at most 16384 bytes"))]
    pub annotations: BTreeMap<String, String>,
}

/// Secret rotation settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RotationSpec {
    /// Rotate the client secret automatically this long after the last rotation (e.g. `720h`).
    /// At least 1m; a schedule waits for the grace period, so only a `gracePeriod` under a minute
    /// rotates that often (each rotation costs the leader one argon2id hash and four writes).
    /// Unset: rotate only on request (the `m2m.dev/rotate` annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$"),
        length(max = 32)
    )]
    #[x_kube(validation = kube::core::Rule::new("duration(self) >= duration('1m')")
        .message("rotation.every must be at least 1m"))]
    pub every: Option<String>,

    /// How long the previous secret keeps working after a rotation, so workloads can pick up the
    /// new one. Default `1h`; `0s` makes it invalid immediately; at most 720h.
    #[serde(default = "default_grace_period")]
    #[schemars(
        regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$"),
        length(max = 32)
    )]
    #[x_kube(validation = kube::core::Rule::new("duration(self) <= duration('720h')")
        .message("rotation.gracePeriod must be at most 720h"))]
    pub grace_period: String,

    /// End the grace period early once the previous secret has not got a token, on any replica,
    /// for this long (counted from the rotation or its last use; e.g. `15m`). At least 10s (and
    /// at least twice the replicas' `--usage-report-interval`, 10s by default, whichever is
    /// longer); the grace period ends it anyway. Unset: the previous secret lasts the whole
    /// grace period. `status.rotation.previousSecretLastUsedAt` shows its last use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$"),
        length(max = 32)
    )]
    #[x_kube(validation = kube::core::Rule::new("duration(self) >= duration('10s') && duration(self) <= duration('720h')")
        .message("rotation.retirePreviousWhenUnusedFor must be between 10s and 720h"))]
    pub retire_previous_when_unused_for: Option<String>,
}

impl Default for RotationSpec {
    fn default() -> Self {
        Self {
            every: None,
            grace_period: default_grace_period(),
            retire_previous_when_unused_for: None,
        }
    }
}

/// Observed state of an M2MApp.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct M2MAppStatus {
    /// The OAuth 2.0 `client_id`. Stable for the life of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub client_id: Option<String>,

    /// The Secret holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub secret_name: Option<String>,

    /// The `org_code` the app's tokens carry (absent for a global app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub organization_code: Option<String>,

    /// Effective scopes: what a token may be granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 128)))]
    pub scopes: Vec<String>,

    /// Rotation state of the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationStatus>,

    /// The app's quota in effect, and whether it was exceeded recently (absent without
    /// `spec.quota`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Box<super::QuotaStatus>>,

    /// `Ready` condition: whether the credentials work, and why not. At most 8 conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 8),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"])
    )]
    pub conditions: Vec<Condition>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The version of the Secret the controller last confirmed to hold a recorded secret
    /// (`<Secret uid>/<resourceVersion>/<current|pending|previous>/<digest of that hash>`), so a
    /// restarted controller need not check an unchanged Secret with argon2id again. Internal;
    /// holds no secret and no hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub verified_secret: Option<String>,
}

/// Rotation state of an app's client secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatus {
    /// Revision of the current secret: 1 at issue, +1 per rotation.
    #[serde(default)]
    pub revision: i64,
    /// When the current secret was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub last_rotation_time: Option<Time>,
    /// When the next scheduled rotation happens (only with `spec.rotation.every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub next_rotation_time: Option<Time>,
    /// When the previous secret stops working (only during a grace period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub previous_secret_expires_at: Option<Time>,
    /// The last `m2m.dev/rotate` annotation value acted on (a value longer than 128
    /// characters as `sha256:` and the hex SHA-256 of the value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub last_handled_rotate_request: Option<String>,
    /// The last `m2m.dev/revoke-previous` annotation value acted on (a value longer than 128
    /// characters as `sha256:` and the hex SHA-256 of the value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub last_handled_revoke_request: Option<String>,
    /// When the previous secret (the one this revision replaced) last got a token, on any
    /// replica (reported by the replicas; the first use at once, later ones at most every 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub previous_secret_last_used_at: Option<Time>,
    /// How many tokens the previous secret got since this revision's rotation, on all replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_uses: Option<i64>,
}

impl M2MApp {
    /// `spec.rotation.every`, parsed (`None`: no schedule; the API server validates it).
    pub fn rotation_every(&self) -> Option<std::time::Duration> {
        let every = self.spec.rotation.as_ref()?.every.as_deref()?;
        super::duration::parse(every).ok()
    }

    /// `spec.rotation.retirePreviousWhenUnusedFor`, parsed (`None`: no such policy).
    pub fn retire_previous_when_unused_for(&self) -> Option<std::time::Duration> {
        let text = self
            .spec
            .rotation
            .as_ref()?
            .retire_previous_when_unused_for
            .as_deref()?;
        super::duration::parse(text).ok()
    }

    /// `spec.rotation.gracePeriod`, parsed (default 1h).
    pub fn grace_period(&self) -> std::time::Duration {
        let text = self
            .spec
            .rotation
            .as_ref()
            .map_or(super::names::DEFAULT_GRACE_PERIOD, |r| {
                r.grace_period.as_str()
            });
        super::duration::parse(text).unwrap_or(std::time::Duration::from_secs(3600))
    }

    /// `spec.tokenLifetime` in seconds, within the schema's 1m..24h (default 1h).
    pub fn token_lifetime_secs(&self) -> i64 {
        super::duration::parse(&self.spec.token_lifetime)
            .map(|d| d.as_secs())
            .unwrap_or(3600)
            .clamp(60, 86_400) as i64
    }

    /// The value of the `m2m.dev/rotate` annotation, if set.
    pub fn rotate_request(&self) -> Option<&str> {
        self.annotation(super::names::ANNOTATION_ROTATE)
    }

    /// The value of the `m2m.dev/revoke-previous` annotation, if set.
    pub fn revoke_request(&self) -> Option<&str> {
        self.annotation(super::names::ANNOTATION_REVOKE_PREVIOUS)
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    /// Whether the app's client may authenticate with `method` (absent
    /// `spec.clientAuthentication`: `ClientSecret` only).
    pub fn accepts(&self, method: super::AuthMethod) -> bool {
        match &self.spec.client_authentication {
            Some(auth) => auth.allows(method),
            None => method == super::AuthMethod::ClientSecret,
        }
    }

    /// Whether the app has a client secret (the `ClientSecret` method).
    pub fn uses_client_secret(&self) -> bool {
        self.accepts(super::AuthMethod::ClientSecret)
    }

    /// The Secret the credentials go to: `spec.secretName` or `<name>-credentials`.
    pub fn secret_name(&self) -> String {
        match &self.spec.secret_name {
            Some(name) => name.clone(),
            None => format!(
                "{}{}",
                self.metadata.name.as_deref().unwrap_or_default(),
                super::names::DEFAULT_SECRET_SUFFIX
            ),
        }
    }
}
