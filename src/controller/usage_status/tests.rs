use super::*;
use crate::api::QuotaMode;

const T: u64 = 1_796_205_600;

fn spec() -> QuotaSpec {
    QuotaSpec {
        tokens_per_minute: Some(60),
        tokens_per_day: None,
        mode: QuotaMode::Enforce,
    }
}

#[test]
fn a_quota_shows_its_first_excess_at_once_and_later_ones_at_most_every_refresh() {
    let (none, wake) = quota(Some(&spec()), None, None, T);
    let none = none.expect("a status for a quota");
    assert_eq!(none.tokens_per_minute, Some(60));
    assert!(!none.exceeded_recently && none.last_exceeded_at.is_none() && wake.is_none());
    assert_eq!(quota(None, None, Some(T), T), (None, None));

    let (first, wake) = quota(Some(&spec()), Some(&none), Some(T), T + 1);
    let first = first.expect("status");
    assert!(first.exceeded_recently);
    assert_eq!(first.last_exceeded_at.as_ref().map(secs), Some(T));
    assert_eq!(wake, Some(RECENT - Duration::from_secs(1)));
    assert!(newly_exceeded(Some(&none), Some(&first)));
    assert!(!newly_exceeded(Some(&first), Some(&first)));

    let (held, wake) = quota(Some(&spec()), Some(&first), Some(T + 5), T + 6);
    assert_eq!(
        held.expect("status").last_exceeded_at.as_ref().map(secs),
        Some(T)
    );
    assert_eq!(wake, Some(REFRESH - Duration::from_secs(6)));
    let (later, _) = quota(Some(&spec()), Some(&first), Some(T + 70), T + 71);
    assert_eq!(
        later.expect("status").last_exceeded_at.as_ref().map(secs),
        Some(T + 70)
    );

    // A report that came within REFRESH of the shown one is shown once REFRESH has passed (it
    // used to stay pending with its time past: a wake of 0, a reconcile loop).
    let (caught_up, wake) = quota(Some(&spec()), Some(&first), Some(T + 30), T + 70);
    assert_eq!(
        caught_up
            .expect("status")
            .last_exceeded_at
            .as_ref()
            .map(secs),
        Some(T + 30)
    );
    assert_eq!(wake, Some(RECENT - Duration::from_secs(40)));

    let (old, wake) = quota(Some(&spec()), Some(&first), Some(T), T + RECENT.as_secs());
    assert!(
        !old.expect("status").exceeded_recently,
        "not recent after 10 minutes"
    );
    assert_eq!(wake, None);
}

#[test]
fn previous_secret_uses_show_the_first_at_once_then_refresh_and_never_go_down() {
    let use_at = |at, uses| PreviousUse {
        revision: 2,
        uses,
        last_used_at: at,
    };
    assert_eq!(previous_use(2, None, None, T), (None, None, None));
    let (at, uses, wake) = previous_use(2, None, Some(use_at(T, 1)), T + 1);
    assert_eq!(
        (at.as_ref().map(secs), uses, wake),
        (Some(T), Some(1), None)
    );
    let shown_at = time(T).expect("time");
    let shown = Some((2, Some(&shown_at), Some(1)));
    let (at, uses, wake) = previous_use(2, shown, Some(use_at(T + 3, 4)), T + 4);
    assert_eq!(
        (at.as_ref().map(secs), uses),
        (Some(T), Some(1)),
        "held back"
    );
    assert_eq!(wake, Some(REFRESH - Duration::from_secs(4)));
    let (at, uses, _) = previous_use(2, shown, Some(use_at(T + 3, 4)), T + REFRESH.as_secs());
    assert_eq!((at.as_ref().map(secs), uses), (Some(T + 3), Some(4)));
    let (_, uses, _) = previous_use(
        2,
        Some((2, Some(&shown_at), Some(9))),
        Some(use_at(T, 1)),
        T + 90,
    );
    assert_eq!(
        uses,
        Some(9),
        "a restarted replica's lost counts do not lower the total"
    );
    assert_eq!(
        previous_use(3, shown, None, T + 90),
        (None, None, None),
        "a new rotation starts from nothing"
    );
}

#[test]
fn report_changes_reconcile_first_events_at_once_and_others_once_per_refresh() {
    use crate::usage::publish::Changes;
    let set = |uids: &[&str]| uids.iter().map(|u| (*u).to_owned()).collect();
    let mut limiter = Limiter::default();
    let t0 = std::time::Instant::now();
    let fresh = Changes {
        fresh: set(&["a"]),
        updated: set(&["b"]),
    };
    assert_eq!(limiter.admit(&fresh, t0), set(&["a", "b"]));
    let again = Changes {
        fresh: std::collections::HashSet::new(),
        updated: set(&["a", "b"]),
    };
    assert!(
        limiter
            .admit(&again, t0 + Duration::from_secs(5))
            .is_empty()
    );
    let first_again = Changes {
        fresh: set(&["a"]),
        updated: std::collections::HashSet::new(),
    };
    assert_eq!(
        limiter.admit(&first_again, t0 + Duration::from_secs(6)),
        set(&["a"])
    );
    assert_eq!(limiter.admit(&again, t0 + REFRESH), set(&["b"]));
}
