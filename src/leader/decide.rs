//! What this replica does with the Lease next (pure: the clock is a parameter), and the Lease
//! contents it writes.
//!
//! A follower never compares the holder's `renewTime` with its own wall clock (a clock that
//! runs ahead would let it take a live lease). It remembers when *it* first saw the current
//! record, on its monotonic clock, and takes the lease only once that record has not changed
//! for a whole lease duration: the holder renews well before, so a live holder always changes
//! it in time, whatever the clocks say. This is what client-go's leader election does.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};

/// The parts of a Lease that say who holds it; any change is a sign of life from the holder.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// `None` (or empty in the object): nobody holds it.
    pub holder: Option<String>,
    /// As written by the holder: compared for change, never against this replica's clock.
    pub renew_time: Option<MicroTime>,
    pub duration: Option<Duration>,
    pub transitions: Option<i32>,
}

impl Record {
    pub fn of(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        Self {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            renew_time: spec.and_then(|s| s.renew_time.clone()),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs),
            transitions: spec.and_then(|s| s.lease_transitions),
        }
    }
}

/// A record and when this replica first saw it.
#[derive(Clone, Debug)]
pub struct Observation {
    pub record: Record,
    pub since: Instant,
}

/// Remembers `record`, keeping the time it was first seen if it has not changed.
pub fn observe(previous: Option<Observation>, record: Record, now: Instant) -> Observation {
    match previous {
        Some(p) if p.record == record => p,
        _ => Observation { record, since: now },
    }
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// The record names this replica: renew it (this also resumes a lease this replica held
    /// before a restart or a missed deadline; the write's resourceVersion precondition proves
    /// that nobody took it meanwhile).
    Renew,
    /// Free, or unchanged for a whole lease duration: take it.
    Acquire,
    /// Someone else holds it; it can be taken at `expires` if the record has not changed.
    Follow { holder: String, expires: Instant },
}

/// Decides from what was observed. `own_duration` is this replica's `--lease-duration`: a
/// follower waits at least that long, even if the record claims a shorter lease.
pub fn next(me: &str, observed: &Observation, now: Instant, own_duration: Duration) -> Next {
    let Some(holder) = observed.record.holder.as_deref() else {
        return Next::Acquire;
    };
    if holder == me {
        return Next::Renew;
    }
    let expires = observed.since + lasts(&observed.record, own_duration);
    if now >= expires {
        Next::Acquire
    } else {
        Next::Follow {
            holder: holder.to_owned(),
            expires,
        }
    }
}

/// How long a record stays valid unchanged: its duration, at least `own_duration`.
fn lasts(record: &Record, own_duration: Duration) -> Duration {
    record
        .duration
        .map_or(own_duration, |d| d.max(own_duration))
}

/// The Lease is missing: at first start, or deleted by hand. It is created at once, unless a
/// holder was seen before it went away: that holder may not have noticed yet, so the lease is
/// created only once that holder's last record would have expired. Returns when to create it.
pub fn create_at(previous: Option<&Observation>, own_duration: Duration) -> Option<Instant> {
    previous
        .filter(|p| p.record.holder.is_some())
        .map(|p| p.since + lasts(&p.record, own_duration))
}

/// The Lease with this replica as holder, renewed now (`next` said `Renew` or `Acquire`).
/// Everything else in the object (metadata, resourceVersion, other spec fields) is kept, so
/// the write is a compare-and-swap on the version that was read.
pub fn claimed(mut lease: Lease, me: &str, how: &Next, now: Timestamp, seconds: i32) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let time = MicroTime(now);
    if *how != Next::Renew || spec.acquire_time.is_none() {
        spec.acquire_time = Some(time.clone());
    }
    if *how != Next::Renew {
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
    }
    spec.holder_identity = Some(me.to_owned());
    spec.renew_time = Some(time);
    spec.lease_duration_seconds = Some(seconds);
    lease
}

/// The Lease given up: no holder, so a follower takes it at its next look.
pub fn released(mut lease: Lease) -> Lease {
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
    }
    lease
}

/// A new Lease held by this replica (there was none).
pub fn created(name: &str, me: &str, now: Timestamp, seconds: i32) -> Lease {
    let mut lease = Lease::default();
    lease.metadata.name = Some(name.to_owned());
    let mut lease = claimed(lease, me, &Next::Acquire, now, seconds);
    if let Some(spec) = lease.spec.as_mut() {
        spec.lease_transitions = Some(0);
    }
    lease
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    fn record(holder: Option<&str>, renewed: i64) -> Record {
        Record {
            holder: holder.map(str::to_owned),
            renew_time: Timestamp::from_second(renewed).ok().map(MicroTime),
            duration: Some(LEASE),
            transitions: Some(1),
        }
    }

    #[test]
    fn a_free_lease_is_taken_at_once_and_ones_own_is_renewed() {
        let t0 = Instant::now();
        let free = observe(None, record(None, 0), t0);
        assert_eq!(next("me", &free, t0, LEASE), Next::Acquire);
        let mine = observe(None, record(Some("me"), 0), t0);
        assert_eq!(next("me", &mine, t0, LEASE), Next::Renew);
    }

    #[test]
    fn a_holder_that_keeps_renewing_is_never_replaced_whatever_its_renew_time_says() {
        let t0 = Instant::now();
        // Its renewTime is years in the past by anyone's clock: a holder whose clock is behind.
        let mut seen = observe(None, record(Some("other"), 1_000), t0);
        for step in 1..10u32 {
            let now = t0 + Duration::from_secs(10) * step;
            seen = observe(
                Some(seen),
                record(Some("other"), 1_000 + i64::from(step)),
                now,
            );
            assert!(
                matches!(next("me", &seen, now, LEASE), Next::Follow { .. }),
                "renewed at step {step}"
            );
        }
    }

    #[test]
    fn a_record_unchanged_for_a_whole_lease_duration_is_taken() {
        let t0 = Instant::now();
        let seen = observe(None, record(Some("other"), 5_000_000_000), t0);
        // Its renewTime is far in the future (a holder whose clock runs ahead, or a dead one):
        // only this replica's own observation counts.
        let almost = t0 + LEASE - Duration::from_millis(1);
        let seen = observe(
            Some(seen),
            record(Some("other"), 5_000_000_000),
            t0 + Duration::from_secs(3),
        );
        assert_eq!(
            seen.since, t0,
            "an unchanged record keeps its first sighting"
        );
        assert_eq!(
            next("me", &seen, almost, LEASE),
            Next::Follow {
                holder: "other".into(),
                expires: t0 + LEASE
            }
        );
        assert_eq!(next("me", &seen, t0 + LEASE, LEASE), Next::Acquire);
    }

    #[test]
    fn a_record_claiming_a_short_lease_is_still_waited_for_as_long_as_ones_own() {
        let t0 = Instant::now();
        let mut short = record(Some("other"), 0);
        short.duration = Some(Duration::from_secs(1));
        let seen = observe(None, short, t0);
        assert!(matches!(
            next("me", &seen, t0 + Duration::from_secs(5), LEASE),
            Next::Follow { .. }
        ));
    }

    #[test]
    fn a_deleted_lease_is_recreated_only_once_its_last_holder_would_have_expired() {
        let t0 = Instant::now();
        assert_eq!(create_at(None, LEASE), None, "first start: at once");
        let free = observe(None, record(None, 0), t0);
        assert_eq!(create_at(Some(&free), LEASE), None);
        let held = observe(None, record(Some("other"), 0), t0);
        assert_eq!(create_at(Some(&held), LEASE), Some(t0 + LEASE));
    }

    #[test]
    fn claiming_keeps_the_read_version_and_counts_transitions() {
        let mut lease = Lease::default();
        lease.metadata.resource_version = Some("42".into());
        lease.spec = Some(LeaseSpec {
            holder_identity: Some("other".into()),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        });
        let now = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let taken = claimed(lease, "me", &Next::Acquire, now, 15);
        assert_eq!(taken.metadata.resource_version.as_deref(), Some("42"));
        let spec = taken.spec.clone().unwrap_or_default();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));

        let later = Timestamp::from_second(1_010).unwrap_or(Timestamp::UNIX_EPOCH);
        let renewed = claimed(taken, "me", &Next::Renew, later, 15);
        let spec = renewed.spec.clone().unwrap_or_default();
        assert_eq!(
            spec.lease_transitions,
            Some(4),
            "a renewal is no transition"
        );
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        assert_eq!(spec.renew_time, Some(MicroTime(later)));

        let given_up = released(renewed);
        assert_eq!(Record::of(&given_up).holder, None);
        let seen = observe(None, Record::of(&given_up), Instant::now());
        assert_eq!(next("other", &seen, seen.since, LEASE), Next::Acquire);
    }
}
