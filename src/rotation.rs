//! "Should this secret rotate now?" as pure policy functions with an injected clock
//! (in the style of cert-manager's certificate policies). The controller asks them after it has
//! checked that the app's Secret holds the current secret.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::credentials::record::ClientRecord;

/// Why a rotation happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A new value of the `m2m.dev/rotate` annotation.
    Requested(String),
    /// `spec.rotation.every` has passed since the last rotation.
    Scheduled,
}

/// What to do about rotation now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Rotate the secret.
    pub rotate: Option<Cause>,
    /// End the previous secret's grace period now (a new `m2m.dev/revoke-previous` value).
    pub revoke_previous: Option<String>,
}

fn add(t: Timestamp, d: Duration) -> Option<Timestamp> {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
}

/// A new annotation value that has not been handled yet.
pub fn new_request(annotation: Option<&str>, handled: Option<&str>) -> Option<String> {
    match annotation {
        Some(value) if Some(value) != handled => Some(value.to_owned()),
        _ => None,
    }
}

/// When the next scheduled rotation is due: `every` after the last one, but never before the
/// previous secret's grace period ends (a schedule never cuts a grace period short; only a
/// request, a person's decision, may replace the previous secret early).
pub fn next_rotation(record: &ClientRecord, every: Option<Duration>) -> Option<Timestamp> {
    // An app without a client secret has nothing to rotate.
    record.current.as_ref()?;
    let due = every.and_then(|every| add(record.last_rotation_time, every))?;
    Some(match &record.previous {
        Some(previous) => due.max(previous.expires_at),
        None => due,
    })
}

/// The rotation decision for an app whose Secret holds its current secret.
pub fn decide(
    record: &ClientRecord,
    rotate_annotation: Option<&str>,
    revoke_annotation: Option<&str>,
    every: Option<Duration>,
    now: Timestamp,
) -> Decision {
    let rotate = match new_request(rotate_annotation, record.handled_rotate_request.as_deref()) {
        Some(value) => Some(Cause::Requested(value)),
        None => next_rotation(record, every)
            .filter(|due| *due <= now)
            .map(|_| Cause::Scheduled),
    };
    Decision {
        rotate,
        revoke_previous: new_request(revoke_annotation, record.handled_revoke_request.as_deref()),
    }
}

/// Whether a previous secret is to be retired for being unused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retire {
    /// No policy, no previous secret, or nothing known yet.
    Never,
    /// It was unused for the whole idle time: retire it now.
    Now,
    /// Not before this, if it stays unused.
    At(Timestamp),
}

/// `spec.rotation.retirePreviousWhenUnusedFor`: the previous secret is retired once neither it
/// was used (`last_used`, on any replica) nor the rotation happened within `idle`. `idle`
/// `None`: no policy. A grace period that ends first ends it anyway.
pub fn retire_unused(
    record: &ClientRecord,
    idle: Option<Duration>,
    last_used: Option<Timestamp>,
    now: Timestamp,
) -> Retire {
    let (Some(idle), Some(previous)) = (idle, record.previous.as_ref()) else {
        return Retire::Never;
    };
    let since = last_used.map_or(record.last_rotation_time, |u| {
        u.max(record.last_rotation_time)
    });
    match add(since, idle) {
        Some(at) if at >= previous.expires_at => Retire::Never,
        Some(at) if at <= now => Retire::Now,
        Some(at) => Retire::At(at),
        None => Retire::Never,
    }
}

/// When a previous secret that is replaced at `now` stops working (`None`: at once).
pub fn previous_expires_at(now: Timestamp, grace: Duration) -> Option<Timestamp> {
    if grace.is_zero() {
        None
    } else {
        add(now, grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::record::AppKey;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn record() -> ClientRecord {
        serde_json::from_value(serde_json::json!({
            "clientId": "m2m_1", "app": AppKey { namespace: "n".into(), name: "a".into(), uid: "u".into() },
            "current": "$argon2id$x", "revision": 1, "lastRotationTime": "1970-01-01T00:01:40Z",
            "handledRotateRequest": "1"
        }))
        .unwrap()
    }

    #[test]
    fn each_new_rotate_value_rotates_once() {
        let r = record();
        assert_eq!(
            decide(&r, Some("1"), None, None, t(200)).rotate,
            None,
            "already handled"
        );
        assert_eq!(
            decide(&r, None, None, None, t(200)).rotate,
            None,
            "removing the annotation does nothing"
        );
        assert_eq!(
            decide(&r, Some("2"), None, None, t(200)).rotate,
            Some(Cause::Requested("2".into()))
        );
    }

    #[test]
    fn schedules_rotate_when_due() {
        let r = record(); // last rotation at t=100
        let every = Some(Duration::from_secs(60));
        assert_eq!(next_rotation(&r, every), Some(t(160)));
        assert_eq!(decide(&r, Some("1"), None, every, t(159)).rotate, None);
        assert_eq!(
            decide(&r, Some("1"), None, every, t(160)).rotate,
            Some(Cause::Scheduled)
        );
        assert_eq!(
            decide(&r, Some("1"), None, every, t(10_000)).rotate,
            Some(Cause::Scheduled),
            "overdue: once"
        );
        assert_eq!(
            decide(&r, Some("1"), None, None, t(10_000)).rotate,
            None,
            "no schedule"
        );
    }

    #[test]
    fn a_due_schedule_waits_for_the_grace_period_to_end() {
        let mut r = record(); // last rotation at t=100
        r.previous = Some(Box::new(crate::credentials::record::Previous {
            hash: r.current.clone().unwrap(),
            expires_at: t(500),
        }));
        let every = Some(Duration::from_secs(60));
        assert_eq!(next_rotation(&r, every), Some(t(500)));
        assert_eq!(decide(&r, Some("1"), None, every, t(499)).rotate, None);
        assert_eq!(
            decide(&r, Some("1"), None, every, t(500)).rotate,
            Some(Cause::Scheduled)
        );
        assert_eq!(
            decide(&r, Some("2"), None, every, t(200)).rotate,
            Some(Cause::Requested("2".into())),
            "a request does not wait"
        );
    }

    #[test]
    fn a_request_wins_over_the_schedule() {
        let r = record();
        let d = decide(&r, Some("3"), None, Some(Duration::from_secs(1)), t(10_000));
        assert_eq!(d.rotate, Some(Cause::Requested("3".into())));
    }

    #[test]
    fn revoke_requests_are_handled_once() {
        let mut r = record();
        assert_eq!(
            decide(&r, None, Some("x"), None, t(0)).revoke_previous,
            Some("x".into())
        );
        r.handled_revoke_request = Some("x".into());
        assert_eq!(
            decide(&r, None, Some("x"), None, t(0)).revoke_previous,
            None
        );
    }

    #[test]
    fn grace_never_ends_before_it_started() {
        assert_eq!(previous_expires_at(t(100), Duration::ZERO), None);
        for grace in [1, 59, 3600, 720 * 3600] {
            let end = previous_expires_at(t(100), Duration::from_secs(grace)).unwrap();
            assert_eq!(end.as_second() - 100, grace as i64);
        }
    }
}
