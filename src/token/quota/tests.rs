use super::{window::Period, *};
use crate::api::{M2MAppSpec, OrganizationSpec, QuotaSpec};

const T0: u64 = 1_796_205_600;

fn quota(minute: i64, mode: QuotaMode) -> Option<QuotaSpec> {
    Some(QuotaSpec {
        tokens_per_minute: Some(minute),
        tokens_per_day: None,
        mode,
    })
}

fn app(uid: &str, quota: Option<QuotaSpec>) -> M2MApp {
    let mut app = M2MApp::new(
        uid,
        M2MAppSpec {
            quota: quota.map(Box::new),
            ..M2MAppSpec::default()
        },
    );
    app.metadata.uid = Some(uid.to_owned());
    app
}

fn org(quota: Option<QuotaSpec>) -> Organization {
    let mut org = Organization::new(
        "acme",
        OrganizationSpec {
            quota,
            ..OrganizationSpec::default()
        },
    );
    org.metadata.uid = Some("org-uid".to_owned());
    org
}

fn issued(q: &Quotas, s: &Subject, n: usize, now: u64) -> usize {
    (0..n).filter(|_| q.admit(s, now).is_ok()).count()
}

#[test]
fn an_app_gets_its_quota_then_a_refusal_until_the_window_ends_and_other_apps_are_unaffected() {
    let q = Quotas::default();
    let limited = Subject::of(&app("a", quota(5, QuotaMode::Enforce)), None);
    let other = Subject::of(&app("b", None), None);
    assert!(other.is_empty());
    assert_eq!(issued(&q, &limited, 8, T0 + 20), 5);
    let Err((retry, exceeded)) = q.admit(&limited, T0 + 20) else {
        panic!("admitted over the quota")
    };
    assert_eq!(retry, 40);
    assert_eq!(exceeded[0].scope, Scope::App);
    assert_eq!(exceeded[0].period, Period::Minute);
    assert_eq!(issued(&q, &other, 50, T0 + 20), 50);
    assert_eq!(issued(&q, &limited, 8, T0 + 60), 5, "the next minute");
}

#[test]
fn each_replica_admits_its_share() {
    let q = Quotas::default();
    q.replicas_handle().store(3, Ordering::Relaxed);
    let s = Subject::of(&app("a", quota(600, QuotaMode::Enforce)), None);
    assert_eq!(issued(&q, &s, 1000, T0), 200);
}

#[test]
fn an_organization_quota_caps_the_sum_of_its_apps() {
    let q = Quotas::default();
    let o = org(quota(10, QuotaMode::Enforce));
    let a = Subject::of(&app("a", None), Some(&o));
    let b = Subject::of(&app("b", quota(100, QuotaMode::Enforce)), Some(&o));
    assert_eq!(issued(&q, &a, 6, T0), 6);
    assert_eq!(issued(&q, &b, 10, T0), 4);
    let Err((_, exceeded)) = q.admit(&a, T0) else {
        panic!("admitted over the organization's quota")
    };
    assert_eq!(exceeded.len(), 1);
    assert_eq!(exceeded[0].scope, Scope::Organization);
    assert_eq!(exceeded[0].limit, 10);
}

#[test]
fn observe_mode_issues_and_reports_the_excess() {
    let q = Quotas::default();
    let s = Subject::of(&app("a", quota(3, QuotaMode::Observe)), None);
    let observed: Vec<usize> = (0..5)
        .map(|_| q.admit(&s, T0).map(|a| a.observed.len()).expect("issued"))
        .collect();
    assert_eq!(observed, [0, 0, 0, 1, 1]);
}

#[test]
fn an_observed_org_quota_does_not_refuse_but_an_enforced_app_quota_does() {
    let q = Quotas::default();
    let o = org(quota(1, QuotaMode::Observe));
    let s = Subject::of(&app("a", quota(2, QuotaMode::Enforce)), Some(&o));
    assert!(q.admit(&s, T0).is_ok_and(|a| a.observed.is_empty()));
    assert!(q.admit(&s, T0).is_ok_and(|a| a.observed.len() == 1));
    let Err((_, exceeded)) = q.admit(&s, T0) else {
        panic!("admitted over the app's quota")
    };
    let scopes: Vec<_> = exceeded.iter().map(|e| (e.scope, e.mode)).collect();
    assert_eq!(
        scopes,
        [
            (Scope::App, QuotaMode::Enforce),
            (Scope::Organization, QuotaMode::Observe)
        ]
    );
}

#[test]
fn a_refused_request_counts_nothing_and_a_refund_frees_its_token() {
    let q = Quotas::default();
    let s = Subject::of(&app("a", quota(2, QuotaMode::Enforce)), None);
    assert_eq!(issued(&q, &s, 10, T0), 2, "eight refusals counted nothing");
    assert_eq!(issued(&q, &s, 10, T0 + 60), 2);
    let q = Quotas::default();
    let first = q.admit(&s, T0).expect("admitted");
    q.refund(first);
    assert_eq!(
        issued(&q, &s, 10, T0),
        2,
        "the refunded token was given back"
    );
}

#[test]
fn counters_of_ended_windows_are_forgotten() {
    let q = Quotas::default();
    let s = Subject::of(&app("a", quota(2, QuotaMode::Enforce)), None);
    let _ = q.admit(&s, T0);
    q.prune(T0 + 30);
    assert_eq!(q.len(), 1);
    q.prune(T0 + 86_400);
    assert!(q.is_empty());
}
