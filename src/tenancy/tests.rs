//! The tenancy decisions, from small fixtures.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, LabelSelectorRequirement, Time,
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
    let g = grant(
        &app("any", None, &["b", "a", "a"]),
        None,
        None,
        &GlobalApps::anywhere(),
    )
    .unwrap();
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
        &GlobalApps::anywhere(),
    );
    assert_eq!(g.unwrap().org_code.as_deref(), Some("org_123"));
}

#[test]
fn refusals_in_order() {
    let o = org("acme", 1, spec_ns(&["tenant-a"]));
    let active = OrgState::Active;
    let missing = grant(
        &app("tenant-a", Some("acme"), &[]),
        None,
        None,
        &GlobalApps::anywhere(),
    )
    .unwrap_err();
    assert_eq!(missing.reason(), "OrganizationNotFound");
    let dup = OrgState::DuplicateCode {
        holder: "older".into(),
    };
    let not_ready = grant(
        &app("tenant-a", Some("acme"), &[]),
        Some((&o, &dup)),
        None,
        &GlobalApps::anywhere(),
    )
    .unwrap_err();
    assert_eq!(not_ready.reason(), "OrganizationNotReady");
    let wrong_ns = grant(
        &app("tenant-b", Some("acme"), &[]),
        Some((&o, &active)),
        None,
        &GlobalApps::anywhere(),
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
        &GlobalApps::anywhere(),
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

#[test]
fn global_apps_only_where_the_operator_allows_them() {
    let only = GlobalApps::only("m2m-system");
    let refused = grant(&app("tenant-a", None, &["admin"]), None, None, &only).unwrap_err();
    assert_eq!(refused.reason(), "NamespaceNotAllowed");
    assert!(
        refused.message().contains("tenant-a"),
        "{}",
        refused.message()
    );
    assert!(
        refused.message().contains("m2m-system"),
        "{}",
        refused.message()
    );
    assert!(grant(&app("m2m-system", None, &["admin"]), None, None, &only).is_ok());
    // Org-bound apps are not affected by the global-app policy.
    let o = org("acme", 1, spec_ns(&["tenant-a"]));
    assert!(
        grant(
            &app("tenant-a", Some("acme"), &[]),
            Some((&o, &OrgState::Active)),
            None,
            &only
        )
        .is_ok()
    );
}

#[test]
fn codes_differing_only_in_case_are_duplicates() {
    let old = org(
        "old",
        1,
        OrganizationSpec {
            code: Some("acme".into()),
            ..Default::default()
        },
    );
    let shouting = org(
        "new",
        2,
        OrganizationSpec {
            code: Some("ACME".into()),
            ..Default::default()
        },
    );
    let all = [old.clone(), shouting.clone()];
    assert_eq!(org_state(&old, &all), OrgState::Active);
    assert_eq!(
        org_state(&shouting, &all),
        OrgState::DuplicateCode {
            holder: "old".into()
        }
    );
}

/// `creationTimestamp` has whole seconds: two Organizations created in one second tie on age.
/// The one whose status already shows the code in effect keeps it, whatever the names; a name
/// decides only between two that both (or neither) hold it.
#[test]
fn within_one_second_the_organization_holding_the_code_keeps_it() {
    let code = |c: &str| OrganizationSpec {
        code: Some(c.into()),
        ..Default::default()
    };
    let mut holder = org("zz-first", 5, code("acme"));
    holder.status = Some(crate::api::OrganizationStatus {
        code: Some("acme".into()),
        conditions: vec![ready(&holder, "True", "Active")],
        ..Default::default()
    });
    let newcomer = org("aa-second", 5, code("ACME"));
    let all = [holder.clone(), newcomer.clone()];
    assert_eq!(org_state(&holder, &all), OrgState::Active);
    assert_eq!(
        org_state(&newcomer, &all),
        OrgState::DuplicateCode {
            holder: "zz-first".into()
        }
    );

    // A status saying the Organization is the duplicate holds nothing: the name decides.
    let mut refused = newcomer.clone();
    refused.status = Some(crate::api::OrganizationStatus {
        code: Some("ACME".into()),
        conditions: vec![ready(&refused, "False", "DuplicateCode")],
        ..Default::default()
    });
    let bare = org("zz-first", 5, code("acme"));
    let all = [bare.clone(), refused.clone()];
    assert_eq!(org_state(&refused, &all), OrgState::Active);
    assert_eq!(
        org_state(&bare, &all),
        OrgState::DuplicateCode {
            holder: "aa-second".into()
        }
    );

    // An older Organization keeps the code against any status of a newer one.
    let older = org("zz-older", 4, code("acme"));
    let all = [older.clone(), holder.clone()];
    assert_eq!(
        org_state(&holder, &all),
        OrgState::DuplicateCode {
            holder: "zz-older".into()
        }
    );
}

fn ready(org: &Organization, status: &str, reason: &str) -> Condition {
    Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: org.metadata.generation,
        last_transition_time: Time(Timestamp::from_second(5).unwrap()),
    }
}
