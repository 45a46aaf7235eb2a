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
    for i in 0..(MAX_APPS as u64 + 10) {
        r.previous_secret_used(&format!("app-{i}"), 1, 1_000_000 + i);
    }
    let snap = r.snapshot(1_000_000 + MAX_APPS as u64 + 10);
    assert_eq!(snap.apps.len(), MAX_APPS);
    assert!(!snap.apps.contains_key("app-0"), "the oldest are left out");
    let json = serde_json::to_string(&snap).expect("json");
    assert!(json.len() < 800 * 1024, "{} bytes", json.len());
}
