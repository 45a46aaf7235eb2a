//! Token quotas (`spec.quota` on M2MApp and Organization) and what status shows of them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Most tokens a quota may allow per period (far above what one endpoint can sign).
pub const MAX_TOKENS: i64 = 1_000_000_000;

/// A cap on the tokens issued, counted across every replica of the token endpoint.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.tokensPerMinute) || has(self.tokensPerDay)")
    .message("quota needs tokensPerMinute, tokensPerDay or both"))]
pub struct QuotaSpec {
    /// Tokens per minute (UTC minutes: a window starts at each whole minute). At least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub tokens_per_minute: Option<i64>,
    /// Tokens per day (UTC days: a window starts at midnight UTC). At least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub tokens_per_day: Option<i64>,
    /// `Enforce` (default): a request over the quota gets 429 with `Retry-After`. `Observe`:
    /// the token is issued, and the excess is counted, audited and shown in status, to size a
    /// quota before enforcing it.
    #[serde(default)]
    pub mode: QuotaMode,
}

/// What a quota does once used up.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema,
)]
pub enum QuotaMode {
    /// Refuse tokens over the quota (429, `Retry-After`).
    #[default]
    Enforce,
    /// Issue them, and count, audit and report the excess.
    Observe,
}

impl QuotaMode {
    /// The metric label and audit value: `enforce` or `observe`.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaMode::Enforce => "enforce",
            QuotaMode::Observe => "observe",
        }
    }
}

/// The quota in effect and when it was last exceeded, on any replica.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaStatus {
    /// `spec.quota.tokensPerMinute` in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<i64>,
    /// `spec.quota.tokensPerDay` in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<i64>,
    /// `spec.quota.mode` in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<QuotaMode>,
    /// The last time a token request found this quota used up (refused in `Enforce` mode,
    /// issued anyway in `Observe` mode), as reported by the replicas (a few seconds late).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub last_exceeded_at: Option<Time>,
    /// True while the quota was exceeded within the last 10 minutes.
    #[serde(default)]
    pub exceeded_recently: bool,
}
