//! The report one replica publishes, and the leader's merge of all of them (pure). Times are
//! whole seconds since the Unix epoch. The report holds UIDs, counts and times: no secret, no
//! hash, no name. Keys are one letter (about 75 bytes per app, so 10,000 apps fit a ConfigMap):
//! `a` apps by UID, `o` organizations by UID, `p` previous-secret use (`r` revision, `u` uses,
//! `l` last used), `q` quota last exceeded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One replica's figures (the `report.json` of its ConfigMap).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// By M2MApp UID.
    #[serde(default, rename = "a", skip_serializing_if = "BTreeMap::is_empty")]
    pub apps: BTreeMap<String, AppUsage>,
    /// By Organization UID.
    #[serde(default, rename = "o", skip_serializing_if = "BTreeMap::is_empty")]
    pub organizations: BTreeMap<String, OrgUsage>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AppUsage {
    #[serde(default, rename = "p", skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<PreviousUse>,
    #[serde(default, rename = "q", skip_serializing_if = "Option::is_none")]
    pub quota_exceeded_at: Option<u64>,
}

impl AppUsage {
    /// The time of the entry's latest event.
    pub fn last_event(&self) -> u64 {
        let previous = self.previous_secret.map_or(0, |p| p.last_used_at);
        previous.max(self.quota_exceeded_at.unwrap_or(0))
    }
}

/// Uses of the previous secret of one rotation on one replica.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PreviousUse {
    /// The revision of the record when the previous secret was used: the rotation that made it
    /// the previous one.
    #[serde(rename = "r")]
    pub revision: i64,
    #[serde(rename = "u")]
    pub uses: u64,
    #[serde(rename = "l")]
    pub last_used_at: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OrgUsage {
    #[serde(default, rename = "q", skip_serializing_if = "Option::is_none")]
    pub quota_exceeded_at: Option<u64>,
}

/// What all replicas together report about one app's previous secret of `revision`: the total
/// uses and the latest use (`None`: not used on any replica).
pub fn previous_secret<'a>(
    reports: impl IntoIterator<Item = &'a Report>,
    app_uid: &str,
    revision: i64,
) -> Option<PreviousUse> {
    reports
        .into_iter()
        .filter_map(|r| r.apps.get(app_uid)?.previous_secret)
        .filter(|p| p.revision == revision)
        .reduce(|a, b| PreviousUse {
            revision,
            uses: a.uses.saturating_add(b.uses),
            last_used_at: a.last_used_at.max(b.last_used_at),
        })
}

/// The latest time any replica found the app's quota used up.
pub fn app_quota_exceeded<'a>(
    reports: impl IntoIterator<Item = &'a Report>,
    app_uid: &str,
) -> Option<u64> {
    reports
        .into_iter()
        .filter_map(|r| r.apps.get(app_uid)?.quota_exceeded_at)
        .max()
}

/// The latest time any replica found the organization's quota used up.
pub fn org_quota_exceeded<'a>(
    reports: impl IntoIterator<Item = &'a Report>,
    org_uid: &str,
) -> Option<u64> {
    reports
        .into_iter()
        .filter_map(|r| r.organizations.get(org_uid)?.quota_exceeded_at)
        .max()
}
