//! Who may bind to which Organization, with which scopes: pure decisions shared by the
//! controller (to set conditions) and the token endpoint (to refuse tokens), so both always agree.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::core::{Selector, SelectorExt};

use crate::api::{
    M2MApp, Organization, OrganizationSpec,
    conditions::{app_reasons, org_reasons},
};

/// What an app may be granted: the `org_code` its tokens carry and its effective scopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub org_code: Option<String>,
    pub scopes: Vec<String>,
}

/// Why an app cannot have credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    OrganizationNotFound { org: String },
    OrganizationNotReady { org: String, why: String },
    NamespaceNotAllowed { org: String, namespace: String },
    ScopesNotAllowed { org: String, scopes: Vec<String> },
}

impl Refusal {
    /// The condition reason of the contract.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::OrganizationNotFound { .. } => app_reasons::ORGANIZATION_NOT_FOUND,
            Refusal::OrganizationNotReady { .. } => app_reasons::ORGANIZATION_NOT_READY,
            Refusal::NamespaceNotAllowed { .. } => app_reasons::NAMESPACE_NOT_ALLOWED,
            Refusal::ScopesNotAllowed { .. } => app_reasons::SCOPES_NOT_ALLOWED,
        }
    }

    /// A message for the condition and the Event.
    pub fn message(&self) -> String {
        match self {
            Refusal::OrganizationNotFound { org } => {
                format!("Organization {org:?} does not exist")
            }
            Refusal::OrganizationNotReady { org, why } => {
                format!("Organization {org:?} is not ready: {why}")
            }
            Refusal::NamespaceNotAllowed { org, namespace } => format!(
                "Organization {org:?} does not allow apps in namespace {namespace:?} \
                 (see its spec.namespaces and spec.namespaceSelector)"
            ),
            Refusal::ScopesNotAllowed { org, scopes } => format!(
                "scopes {} are outside the allowedScopes of Organization {org:?}",
                scopes.join(", ")
            ),
        }
    }
}

/// Why an app with credentials gets no tokens right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    Disabled,
    OrganizationSuspended,
}

impl Block {
    pub fn reason(self) -> &'static str {
        match self {
            Block::Disabled => app_reasons::DISABLED,
            Block::OrganizationSuspended => app_reasons::ORGANIZATION_SUSPENDED,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Block::Disabled => "spec.disabled is true: credentials are kept, tokens are refused",
            Block::OrganizationSuspended => {
                "the Organization is suspended: credentials are kept, tokens are refused"
            }
        }
    }
}

/// The state of an Organization's code and namespace rules, independent of any app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrgState {
    /// The code is in effect.
    Active,
    /// An older Organization holds the same code.
    DuplicateCode { holder: String },
    /// The namespace selector cannot be evaluated.
    InvalidSelector { error: String },
}

impl OrgState {
    pub fn reason(&self) -> &'static str {
        match self {
            OrgState::Active => org_reasons::ACTIVE,
            OrgState::DuplicateCode { .. } => org_reasons::DUPLICATE_CODE,
            OrgState::InvalidSelector { .. } => org_reasons::INVALID_NAMESPACE_SELECTOR,
        }
    }
}

/// Orders Organizations by age: the older one keeps a contested code (ties: the smaller name).
fn age_key(org: &Organization) -> (Timestamp, &str) {
    (
        org.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::MAX),
        org.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// The older Organization that holds `org`'s code, if any.
pub fn code_holder<'a>(
    org: &Organization,
    all: impl IntoIterator<Item = &'a Organization>,
) -> Option<&'a Organization> {
    let code = org.effective_code();
    all.into_iter()
        .filter(|other| other.metadata.name != org.metadata.name)
        .filter(|other| other.metadata.deletion_timestamp.is_none())
        .filter(|other| other.effective_code() == code)
        .filter(|other| age_key(other) < age_key(org))
        .min_by(|a, b| age_key(a).cmp(&age_key(b)))
}

/// The state of `org` among all Organizations.
pub fn org_state<'a>(
    org: &Organization,
    all: impl IntoIterator<Item = &'a Organization>,
) -> OrgState {
    if let Some(holder) = code_holder(org, all) {
        return OrgState::DuplicateCode {
            holder: holder.metadata.name.clone().unwrap_or_default(),
        };
    }
    if let Some(selector) = &org.spec.namespace_selector
        && let Err(e) = Selector::try_from(selector.clone())
    {
        return OrgState::InvalidSelector {
            error: e.to_string(),
        };
    }
    OrgState::Active
}

/// Whether neither `namespaces` nor `namespaceSelector` is set (no namespace may bind).
pub fn binds_no_namespace(spec: &OrganizationSpec) -> bool {
    spec.namespaces.as_ref().is_none_or(Vec::is_empty) && spec.namespace_selector.is_none()
}

/// Whether apps in `namespace` (with these labels) may bind to the Organization.
pub fn namespace_allowed(
    spec: &OrganizationSpec,
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    if spec.namespaces.iter().flatten().any(|n| n == namespace) {
        return true;
    }
    let (Some(selector), Some(labels)) = (&spec.namespace_selector, labels) else {
        return false;
    };
    match Selector::try_from(selector.clone()) {
        Ok(selector) => selector.matches(labels),
        Err(_) => false,
    }
}

/// The scopes of `requested` outside `allowed` (`None` allowed: no ceiling).
pub fn scopes_outside(requested: &[String], allowed: Option<&[String]>) -> Vec<String> {
    match allowed {
        None => Vec::new(),
        Some(allowed) => requested
            .iter()
            .filter(|s| !allowed.contains(s))
            .cloned()
            .collect(),
    }
}

/// What the app may be granted, or why it may have no credentials.
///
/// `org` is the Organization `spec.organizationRef` names (looked up by the caller), with its
/// [`OrgState`]; `namespace_labels` are the labels of the app's namespace (`None` if unknown).
pub fn grant(
    app: &M2MApp,
    org: Option<(&Organization, &OrgState)>,
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> Result<Grant, Refusal> {
    let mut scopes = app.spec.scopes.clone();
    scopes.sort();
    scopes.dedup();
    let Some(org_ref) = &app.spec.organization_ref else {
        return Ok(Grant {
            org_code: None,
            scopes,
        });
    };
    let org_name = org_ref.name.clone();
    let Some((org, state)) = org.filter(|(o, _)| o.metadata.deletion_timestamp.is_none()) else {
        return Err(Refusal::OrganizationNotFound { org: org_name });
    };
    match state {
        OrgState::Active | OrgState::InvalidSelector { .. } => {}
        OrgState::DuplicateCode { holder } => {
            return Err(Refusal::OrganizationNotReady {
                org: org_name,
                why: format!("its code is already used by the older Organization {holder:?}"),
            });
        }
    }
    let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
    if !namespace_allowed(&org.spec, namespace, namespace_labels) {
        return Err(Refusal::NamespaceNotAllowed {
            org: org_name,
            namespace: namespace.to_owned(),
        });
    }
    let outside = scopes_outside(&scopes, org.spec.allowed_scopes.as_deref());
    if !outside.is_empty() {
        return Err(Refusal::ScopesNotAllowed {
            org: org_name,
            scopes: outside,
        });
    }
    Ok(Grant {
        org_code: Some(org.effective_code().to_owned()),
        scopes,
    })
}

/// Whether an app that has a grant is blocked from getting tokens.
pub fn block(app: &M2MApp, org: Option<&Organization>) -> Option<Block> {
    if app.spec.disabled {
        Some(Block::Disabled)
    } else if org.is_some_and(|o| o.spec.suspended) {
        Some(Block::OrganizationSuspended)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        LabelSelector, LabelSelectorRequirement, Time,
    };

    use super::*;
    use crate::api::{M2MAppSpec, OrganizationRef};

    fn org(name: &str, created: i64, spec: OrganizationSpec) -> Organization {
        let mut o = Organization::new(name, spec);
        o.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        o
    }

    fn app(ns: &str, org: Option<&str>, scopes: &[&str]) -> M2MApp {
        let mut a = M2MApp::new(
            "agent",
            M2MAppSpec {
                organization_ref: org.map(|n| OrganizationRef { name: n.into() }),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                audiences: vec!["api".into()],
                ..M2MAppSpec::default()
            },
        );
        a.metadata.namespace = Some(ns.into());
        a
    }

    fn spec_ns(ns: &[&str]) -> OrganizationSpec {
        OrganizationSpec {
            namespaces: Some(ns.iter().map(|s| s.to_string()).collect()),
            ..OrganizationSpec::default()
        }
    }

    #[test]
    fn global_apps_get_their_scopes_and_no_org_code() {
        let g = grant(&app("any", None, &["b", "a", "a"]), None, None).unwrap();
        assert_eq!(
            g,
            Grant {
                org_code: None,
                scopes: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn org_apps_get_the_org_code_when_everything_allows() {
        let mut spec = spec_ns(&["tenant-a"]);
        spec.code = Some("org_123".into());
        spec.allowed_scopes = Some(vec!["read".into(), "write".into()]);
        let o = org("acme", 1, spec);
        let g = grant(
            &app("tenant-a", Some("acme"), &["read"]),
            Some((&o, &OrgState::Active)),
            None,
        );
        assert_eq!(g.unwrap().org_code.as_deref(), Some("org_123"));
    }

    #[test]
    fn refusals_in_order() {
        let o = org("acme", 1, spec_ns(&["tenant-a"]));
        let active = OrgState::Active;
        let missing = grant(&app("tenant-a", Some("acme"), &[]), None, None).unwrap_err();
        assert_eq!(missing.reason(), "OrganizationNotFound");
        let dup = OrgState::DuplicateCode {
            holder: "older".into(),
        };
        let not_ready =
            grant(&app("tenant-a", Some("acme"), &[]), Some((&o, &dup)), None).unwrap_err();
        assert_eq!(not_ready.reason(), "OrganizationNotReady");
        let wrong_ns = grant(
            &app("tenant-b", Some("acme"), &[]),
            Some((&o, &active)),
            None,
        )
        .unwrap_err();
        assert_eq!(wrong_ns.reason(), "NamespaceNotAllowed");
        let mut capped = spec_ns(&["tenant-a"]);
        capped.allowed_scopes = Some(vec!["read".into()]);
        let o = org("acme", 1, capped);
        let scopes = grant(
            &app("tenant-a", Some("acme"), &["read", "admin"]),
            Some((&o, &active)),
            None,
        )
        .unwrap_err();
        assert_eq!(
            scopes,
            Refusal::ScopesNotAllowed {
                org: "acme".into(),
                scopes: vec!["admin".into()]
            }
        );
    }

    #[test]
    fn no_namespaces_means_no_namespace_binds() {
        let o = org("acme", 1, OrganizationSpec::default());
        assert!(binds_no_namespace(&o.spec));
        let labels = BTreeMap::from([("a".to_string(), "b".to_string())]);
        assert!(!namespace_allowed(&o.spec, "tenant-a", Some(&labels)));
    }

    #[test]
    fn selectors_match_labels_and_empty_selects_all() {
        let mut spec = OrganizationSpec {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("tenant".into(), "acme".into())])),
                ..LabelSelector::default()
            }),
            ..OrganizationSpec::default()
        };
        let acme = BTreeMap::from([("tenant".to_string(), "acme".to_string())]);
        let other = BTreeMap::from([("tenant".to_string(), "globex".to_string())]);
        assert!(namespace_allowed(&spec, "x", Some(&acme)));
        assert!(!namespace_allowed(&spec, "x", Some(&other)));
        assert!(!namespace_allowed(&spec, "x", None));
        spec.namespace_selector = Some(LabelSelector::default());
        assert!(namespace_allowed(&spec, "x", Some(&other)));
        spec.namespace_selector = Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tenant".into(),
                operator: "Bogus".into(),
                values: None,
            }]),
            ..LabelSelector::default()
        });
        assert!(
            !namespace_allowed(&spec, "x", Some(&acme)),
            "an invalid selector selects nothing"
        );
    }

    #[test]
    fn the_older_organization_keeps_a_duplicated_code() {
        let old = org(
            "old",
            1,
            OrganizationSpec {
                code: Some("c".into()),
                ..Default::default()
            },
        );
        let new = org(
            "new",
            2,
            OrganizationSpec {
                code: Some("c".into()),
                ..Default::default()
            },
        );
        let other = org("c", 3, OrganizationSpec::default()); // code defaults to its name "c"
        let all = [old.clone(), new.clone(), other.clone()];
        assert_eq!(org_state(&old, &all), OrgState::Active);
        assert_eq!(
            org_state(&new, &all),
            OrgState::DuplicateCode {
                holder: "old".into()
            }
        );
        assert_eq!(
            org_state(&other, &all),
            OrgState::DuplicateCode {
                holder: "old".into()
            }
        );
    }

    #[test]
    fn disabled_and_suspended_block() {
        let mut a = app("ns", Some("acme"), &[]);
        let mut o = org("acme", 1, OrganizationSpec::default());
        assert_eq!(block(&a, Some(&o)), None);
        o.spec.suspended = true;
        assert_eq!(block(&a, Some(&o)), Some(Block::OrganizationSuspended));
        a.spec.disabled = true;
        assert_eq!(block(&a, Some(&o)), Some(Block::Disabled));
    }
}
