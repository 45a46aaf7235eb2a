//! Who may bind to which Organization, with which scopes: pure decisions shared by the
//! controller (to set conditions) and the token endpoint (to refuse tokens), so both always agree.

mod global;

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::core::{Selector, SelectorExt};

use crate::api::{
    M2MApp, Organization, OrganizationSpec,
    conditions::{app_reasons, org_reasons},
};

pub use global::{GlobalApps, parse_labels};

/// What an app may be granted: the `org_code` its tokens carry and its effective scopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub org_code: Option<String>,
    pub scopes: Vec<String>,
}

/// Why an app cannot have credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    OrganizationNotFound {
        org: String,
    },
    OrganizationNotReady {
        org: String,
        why: String,
    },
    NamespaceNotAllowed {
        org: String,
        namespace: String,
    },
    ScopesNotAllowed {
        org: String,
        scopes: Vec<String>,
    },
    /// A global app outside the namespaces the operator allows global apps in.
    GlobalAppNotAllowed {
        namespace: String,
        allowed: String,
    },
    /// The app's credentials were issued for an Organization of this name that was deleted;
    /// the one there now is another (the controller issues new credentials).
    OrganizationReplaced {
        org: String,
    },
}

impl Refusal {
    /// The condition reason of the contract.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::OrganizationNotFound { .. } => app_reasons::ORGANIZATION_NOT_FOUND,
            Refusal::OrganizationNotReady { .. } => app_reasons::ORGANIZATION_NOT_READY,
            Refusal::NamespaceNotAllowed { .. } => app_reasons::NAMESPACE_NOT_ALLOWED,
            Refusal::ScopesNotAllowed { .. } => app_reasons::SCOPES_NOT_ALLOWED,
            Refusal::GlobalAppNotAllowed { .. } => app_reasons::NAMESPACE_NOT_ALLOWED,
            Refusal::OrganizationReplaced { .. } => app_reasons::ORGANIZATION_NOT_READY,
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
            Refusal::OrganizationReplaced { org } => format!(
                "Organization {org:?} was deleted and created again: the credentials issued for \
                 the old one are not valid for it (new ones are being issued)"
            ),
            Refusal::GlobalAppNotAllowed { namespace, allowed } => format!(
                "a global app (no spec.organizationRef) is not allowed in namespace {namespace:?}: \
                 the operator allows global apps in {allowed} only; bind the app to an \
                 Organization"
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

/// Orders Organizations by age: the older one keeps a contested code. `creationTimestamp` has
/// whole seconds, so two created in one second tie: then the one whose status shows it holding
/// the code keeps it (an Organization in effect is not displaced by a newcomer whose name sorts
/// first), and only then the smaller name.
fn age_key(org: &Organization) -> (Timestamp, bool, &str) {
    (
        org.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::MAX),
        !holds_code(org),
        org.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// Whether `org`'s status says its code is in effect: the status names that code and the
/// `Ready` condition is not `DuplicateCode` (a suspended Organization, or one with an invalid
/// selector, still holds its code).
fn holds_code(org: &Organization) -> bool {
    org.status.as_ref().is_some_and(|s| {
        s.code
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(org.effective_code()))
            && s.conditions
                .iter()
                .find(|c| c.type_ == crate::api::conditions::READY)
                .is_some_and(|c| c.reason != org_reasons::DUPLICATE_CODE)
    })
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
        // Case-insensitively: APIs that compare codes ignoring case must not merge two tenants.
        .filter(|other| other.effective_code().eq_ignore_ascii_case(code))
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
/// [`OrgState`]; `namespace_labels` are the labels of the app's namespace (`None` if unknown);
/// `global` says where apps without an Organization may live.
pub fn grant(
    app: &M2MApp,
    org: Option<(&Organization, &OrgState)>,
    namespace_labels: Option<&BTreeMap<String, String>>,
    global: &GlobalApps,
) -> Result<Grant, Refusal> {
    let mut scopes = app.spec.scopes.clone();
    scopes.sort();
    scopes.dedup();
    let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
    let Some(org_ref) = &app.spec.organization_ref else {
        if !global.allows(namespace, namespace_labels) {
            return Err(Refusal::GlobalAppNotAllowed {
                namespace: namespace.to_owned(),
                allowed: global.describe(),
            });
        }
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
mod tests;
