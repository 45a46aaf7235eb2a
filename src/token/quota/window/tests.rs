use super::*;
use crate::api::{QuotaMode, QuotaSpec};

fn limits(minute: Option<i64>, day: Option<i64>) -> Limits {
    Limits::of(&QuotaSpec {
        tokens_per_minute: minute,
        tokens_per_day: day,
        mode: QuotaMode::Enforce,
    })
}

/// 2026-12-02T10:00:00Z: a whole minute and a whole hour.
const T0: u64 = 1_796_205_600;

#[test]
fn shares_round_up_so_the_replicas_admit_the_quota_plus_less_than_one_token_each() {
    assert_eq!(share(600, 3), 200);
    assert_eq!(share(10, 3), 4);
    assert_eq!(share(1, 3), 1);
    assert_eq!(share(5, 0), 5, "an unknown replica count is one replica");
    for limit in [1u64, 2, 7, 10, 599, 600, 601] {
        for n in 1..=8usize {
            let total = share(limit, n) * n as u64;
            assert!(
                total >= limit && total < limit + n as u64,
                "{limit} over {n}: {total}"
            );
        }
    }
}

#[test]
fn a_share_is_admitted_then_the_window_is_used_up_until_it_ends() {
    let l = limits(Some(6), None);
    let mut c = Counters::default();
    let now = T0 + 15;
    for _ in 0..2 {
        assert_eq!(c.exceeded(Scope::App, &l, now, 3).count(), 0);
        c.add(now);
    }
    let over: Vec<_> = c.exceeded(Scope::App, &l, now, 3).collect();
    assert_eq!(over.len(), 1);
    assert_eq!(over[0].period, Period::Minute);
    assert_eq!(over[0].limit, 6);
    assert_eq!(
        over[0].retry_after, 45,
        "seconds to the end of the UTC minute"
    );
    assert_eq!(
        c.exceeded(Scope::App, &l, T0 + 59, 3)
            .next()
            .map(|e| e.retry_after),
        Some(1)
    );
    assert_eq!(
        c.exceeded(Scope::App, &l, T0 + 60, 3).count(),
        0,
        "a new minute starts empty"
    );
    assert_eq!(
        c.exceeded(Scope::App, &l, now, 1).count(),
        0,
        "with one replica the share is the whole quota"
    );
}

#[test]
fn a_day_quota_waits_for_midnight_utc() {
    let l = limits(None, Some(2));
    let mut c = Counters::default();
    c.add(T0);
    c.add(T0 + 3600);
    let over: Vec<_> = c.exceeded(Scope::Organization, &l, T0 + 7200, 1).collect();
    assert_eq!(over.len(), 1);
    assert_eq!(over[0].period, Period::Day);
    assert_eq!(over[0].retry_after, 86_400 - (T0 + 7200) % 86_400);
    assert_eq!(c.count(Period::Minute, T0 + 7200), 0);
    assert_eq!(c.count(Period::Day, T0 + 7200), 2);
}

#[test]
fn a_refund_takes_back_exactly_the_token_of_its_window() {
    let mut c = Counters::default();
    c.add(T0 + 10);
    c.add(T0 + 10);
    c.refund(T0 + 10);
    assert_eq!(c.count(Period::Minute, T0 + 10), 1);
    // A token counted in an earlier minute is not taken from the new one.
    c.add(T0 + 61);
    c.refund(T0 + 10);
    assert_eq!(c.count(Period::Minute, T0 + 61), 1);
    assert_eq!(c.count(Period::Day, T0 + 61), 1);
}

#[test]
fn counters_are_stale_once_every_window_ended() {
    let mut c = Counters::default();
    c.add(T0);
    assert!(!c.is_stale(T0 + 120), "the day window still runs");
    assert!(c.is_stale(T0 + 86_400));
}
