use super::*;

const MINUTE: Duration = Duration::from_secs(60);

fn key(s: &str) -> String {
    s.to_owned()
}

#[test]
fn throttles_after_max_failures_until_the_window_ends() {
    let t0 = Instant::now();
    let mut t = Throttle::new(3, MINUTE, 100);
    for _ in 0..2 {
        t.fail(&key("a"), t0);
    }
    assert_eq!(t.blocked(&key("a"), t0), None);
    t.fail(&key("a"), t0);
    assert_eq!(
        t.blocked(&key("a"), t0 + Duration::from_secs(10)),
        Some(Duration::from_secs(50))
    );
    assert_eq!(t.blocked(&key("b"), t0), None, "other keys are unaffected");
    assert_eq!(t.blocked(&key("a"), t0 + MINUTE), None);
    t.fail(&key("a"), t0 + Duration::from_secs(61));
    assert_eq!(
        t.blocked(&key("a"), t0 + Duration::from_secs(61)),
        None,
        "a new window"
    );
}

#[test]
fn memory_is_bounded_and_the_oldest_window_goes_first() {
    let t0 = Instant::now();
    let mut t = Throttle::new(3, MINUTE, 10);
    for i in 0..1000u64 {
        t.fail(&key(&format!("k{i}")), t0 + Duration::from_millis(i));
    }
    assert_eq!(t.len(), 10);
    assert!(t.queued() <= 10, "queue {}", t.queued());
    // The ten newest keys are kept.
    for _ in 0..2 {
        t.fail(&key("k999"), t0 + Duration::from_secs(1));
    }
    assert!(
        t.blocked(&key("k999"), t0 + Duration::from_secs(1))
            .is_some()
    );
}

#[test]
fn ended_windows_are_dropped_as_time_passes() {
    let t0 = Instant::now();
    let mut t = Throttle::new(3, MINUTE, 1000);
    for i in 0..500 {
        t.fail(&key(&format!("k{i}")), t0);
    }
    assert_eq!(t.len(), 500);
    t.fail(&key("late"), t0 + MINUTE);
    assert_eq!(t.len(), 1, "every ended window is gone");
    assert_eq!(t.queued(), 1);
}

#[test]
fn a_restarted_window_is_not_dropped_by_its_old_queue_item() {
    let t0 = Instant::now();
    let mut t = Throttle::new(2, MINUTE, 1000);
    let a = key("a");
    t.fail(&a, t0);
    // Window 1 ends; a failure at t0+60s starts window 2 for the same key.
    let t1 = t0 + MINUTE;
    t.fail(&a, t1);
    t.fail(&a, t1);
    let t2 = t1 + Duration::from_secs(30);
    t.fail(&key("b"), t2);
    assert_eq!(
        t.blocked(&a, t2),
        Some(Duration::from_secs(30)),
        "window 2 of `a` survives the expiry of window 1"
    );
}
