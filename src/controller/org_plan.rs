//! The pure half of the Organization reconcile: the status from the organization's state.

use k8s_openapi::jiff::Timestamp;

use super::conditions;
use crate::{
    api::{Organization, OrganizationStatus, conditions::org_reasons},
    tenancy::{self, OrgState},
};

/// The desired status of `org`, bound by `apps` M2MApps.
pub fn status(
    org: &Organization,
    state: &OrgState,
    apps: i32,
    quota: Option<crate::api::QuotaStatus>,
    now: Timestamp,
) -> OrganizationStatus {
    let code = org.effective_code().to_owned();
    let (ok, reason, message) = match state {
        OrgState::DuplicateCode { holder } => (
            false,
            state.reason(),
            format!(
                "code {code:?} is already used by the older Organization {holder:?}; \
                 no token carries it for this Organization"
            ),
        ),
        OrgState::InvalidSelector { error } => (
            false,
            state.reason(),
            format!("spec.namespaceSelector is invalid ({error}); it selects no namespace"),
        ),
        OrgState::Active if org.spec.suspended => (
            false,
            org_reasons::SUSPENDED,
            "suspended: every app of this Organization is refused tokens".to_owned(),
        ),
        OrgState::Active if tenancy::binds_no_namespace(&org.spec) => (
            false,
            org_reasons::NO_NAMESPACES,
            "neither spec.namespaces nor spec.namespaceSelector is set: no namespace may bind apps"
                .to_owned(),
        ),
        OrgState::Active => (
            true,
            org_reasons::ACTIVE,
            format!("code {code:?} is in effect"),
        ),
    };
    let previous = org
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    OrganizationStatus {
        code: Some(code),
        apps,
        quota,
        conditions: vec![conditions::ready(
            ok,
            reason,
            message,
            org.metadata.generation,
            previous,
            now,
        )],
        observed_generation: org.metadata.generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OrganizationSpec;

    fn org(spec: OrganizationSpec) -> Organization {
        Organization::new("acme", spec)
    }

    fn reason(o: &Organization, state: &OrgState) -> String {
        status(o, state, 0, None, Timestamp::UNIX_EPOCH).conditions[0]
            .reason
            .clone()
    }

    #[test]
    fn reasons() {
        let allowed = OrganizationSpec {
            namespaces: Some(vec!["a".into()]),
            ..Default::default()
        };
        assert_eq!(reason(&org(allowed.clone()), &OrgState::Active), "Active");
        assert_eq!(
            reason(&org(OrganizationSpec::default()), &OrgState::Active),
            "NoNamespacesAllowed"
        );
        let suspended = OrganizationSpec {
            suspended: true,
            ..allowed.clone()
        };
        assert_eq!(reason(&org(suspended), &OrgState::Active), "Suspended");
        let dup = OrgState::DuplicateCode {
            holder: "old".into(),
        };
        assert_eq!(reason(&org(allowed), &dup), "DuplicateCode");
    }

    #[test]
    fn code_defaults_to_the_name_and_apps_are_counted() {
        let s = status(
            &org(OrganizationSpec::default()),
            &OrgState::Active,
            3,
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(s.code.as_deref(), Some("acme"));
        assert_eq!(s.apps, 3);
    }
}
