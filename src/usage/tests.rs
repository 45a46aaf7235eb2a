use super::{report::*, *};

#[test]
fn uses_of_one_rotation_add_up_across_replicas_and_a_new_rotation_starts_again() {
    let (a, b) = (Recorder::default(), Recorder::default());
    a.previous_secret_used("uid-1", 2, 100);
    a.previous_secret_used("uid-1", 2, 130);
    b.previous_secret_used("uid-1", 2, 120);
    let reports = [a.snapshot(140), b.snapshot(140)];
    assert_eq!(
        previous_secret(&reports, "uid-1", 2),
        Some(PreviousUse {
            revision: 2,
            uses: 3,
            last_used_at: 130
        })
    );
    assert_eq!(previous_secret(&reports, "uid-1", 3), None);
    assert_eq!(previous_secret(&reports, "uid-2", 2), None);
    a.previous_secret_used("uid-1", 3, 200);
    assert_eq!(
        previous_secret(&[a.snapshot(200)], "uid-1", 3).map(|p| p.uses),
        Some(1),
        "the next rotation's previous secret counts from zero"
    );
}

#[test]
fn reports_forget_old_entries_and_stay_bounded() {
    let r = Recorder::default();
    r.previous_secret_used("old", 1, 0);
    r.previous_secret_used("new", 1, PREVIOUS_KEEP_SECS);
    let snap = r.snapshot(PREVIOUS_KEEP_SECS + 1);
    assert!(!snap.apps.contains_key("old") && snap.apps.contains_key("new"));
    // Real UIDs, ten-digit times, counts in the thousands: the worst a report holds.
    let uid = |i: u64| format!("{i:08x}-1b2c-4d5e-8f90-a1b2c3d4e5f6");
    let now = 1_796_205_600;
    for i in 0..(MAX_APPS as u64 + 10) {
        for _ in 0..3 {
            r.previous_secret_used(&uid(i), 12, now + i);
        }
        r.quota_exceeded(&app_with_uid(&uid(i)), None, &[exceeded()], now + i);
    }
    let snap = r.snapshot(now + MAX_APPS as u64 + 10);
    assert_eq!(snap.apps.len(), MAX_APPS);
    assert!(!snap.apps.contains_key(&uid(0)), "the oldest are left out");
    let json = serde_json::to_string(&snap).expect("json");
    assert!(
        json.len() < 1_000_000,
        "{} bytes do not fit a ConfigMap",
        json.len()
    );
    eprintln!("a report of {MAX_APPS} apps: {} bytes", json.len());
}

fn app_with_uid(uid: &str) -> crate::api::M2MApp {
    let mut app = crate::api::M2MApp::new("a", Default::default());
    app.metadata.uid = Some(uid.to_owned());
    app
}

fn exceeded() -> Exceeded {
    Exceeded {
        scope: Scope::App,
        period: crate::token::quota::window::Period::Minute,
        mode: crate::api::QuotaMode::Enforce,
        limit: 600,
        retry_after: 10,
    }
}
