//! Which Organization changes concern its apps. An app's reconcile reads its Organization's
//! metadata and spec (and, for duplicate codes, the other Organizations'); the Organization
//! controller also rewrites the Organization's status each time its app count changes, and
//! re-reconciling every app of the Organization for that would multiply the work of a burst of
//! new apps (each status write re-queued all its apps). So the app controller is triggered by an
//! Organization change only when what its apps depend on changed, or the Organization is gone.

use std::{collections::HashMap, sync::Mutex};

use kube::ResourceExt;

use crate::api::{Organization, conditions::READY};

/// What of an Organization its apps' reconciles depend on: its identity and spec (through the
/// generation), deletion, and the effective code and Ready condition, where a duplicate code
/// that another Organization's deletion resolved shows up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    uid: Option<String>,
    generation: Option<i64>,
    deleting: bool,
    code: Option<String>,
    ready: Option<(String, String)>,
}

pub fn fingerprint(org: &Organization) -> Fingerprint {
    let status = org.status.as_ref();
    Fingerprint {
        uid: org.metadata.uid.clone(),
        generation: org.metadata.generation,
        deleting: org.metadata.deletion_timestamp.is_some(),
        code: status.and_then(|s| s.code.clone()),
        ready: status
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY))
            .map(|c| (c.status.clone(), c.reason.clone())),
    }
}

/// The fingerprint last seen of each Organization.
#[derive(Debug, Default)]
pub struct OrgTriggers(Mutex<HashMap<String, Fingerprint>>);

impl OrgTriggers {
    /// Whether this observed change of `org` concerns its apps. `cached`: whether the
    /// Organization is still in the cache (false: it was deleted).
    pub fn concerns_apps(&self, org: &Organization, cached: bool) -> bool {
        let Ok(mut seen) = self.0.lock() else {
            return true;
        };
        let name = org.name_any();
        if !cached {
            seen.remove(&name);
            return true;
        }
        let now = fingerprint(org);
        seen.insert(name, now.clone()).as_ref() != Some(&now)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::api::{OrganizationSpec, OrganizationStatus};

    fn org(generation: i64, apps: i32, reason: &str) -> Organization {
        let mut o = Organization::new("acme", OrganizationSpec::default());
        o.metadata.uid = Some("u1".into());
        o.metadata.generation = Some(generation);
        o.status = Some(OrganizationStatus {
            code: Some("acme".into()),
            apps,
            quota: None,
            conditions: vec![Condition {
                type_: READY.into(),
                status: if reason == "Active" { "True" } else { "False" }.into(),
                reason: reason.into(),
                message: String::new(),
                observed_generation: Some(generation),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            }],
            observed_generation: Some(generation),
        });
        o
    }

    #[test]
    fn an_app_count_change_does_not_concern_the_apps() {
        let t = OrgTriggers::default();
        assert!(t.concerns_apps(&org(1, 0, "Active"), true), "first sight");
        assert!(!t.concerns_apps(&org(1, 1, "Active"), true));
        assert!(!t.concerns_apps(&org(1, 7, "Active"), true));
    }

    #[test]
    fn spec_ready_identity_and_deletion_changes_do() {
        let t = OrgTriggers::default();
        assert!(t.concerns_apps(&org(1, 0, "Active"), true));
        assert!(t.concerns_apps(&org(2, 0, "Active"), true), "spec changed");
        assert!(
            t.concerns_apps(&org(2, 0, "DuplicateCode"), true),
            "Ready changed"
        );
        let mut recreated = org(2, 0, "DuplicateCode");
        recreated.metadata.uid = Some("u2".into());
        assert!(
            t.concerns_apps(&recreated, true),
            "another object of that name"
        );
        assert!(t.concerns_apps(&recreated, false), "deleted");
        assert!(t.concerns_apps(&recreated, true), "back again");
    }
}
