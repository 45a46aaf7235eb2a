//! Building `Ready` conditions.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

use crate::api::conditions::READY;

/// `t` as the API server stores it: whole seconds (`metav1.Time` is RFC 3339 without fractions).
/// Status is compared with the cached object to decide whether to write it, so a timestamp with
/// sub-second precision would never compare equal and every reconcile would write the status.
pub fn api_time(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// A `Ready` condition; keeps the previous `lastTransitionTime` when the status did not change.
pub fn ready(
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    previous: &[Condition],
    now: Timestamp,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let transition = previous
        .iter()
        .find(|c| c.type_ == READY && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| api_time(now));
    Condition {
        type_: READY.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: transition,
    }
}

/// The reason of the `Ready` condition in `conditions`, if any.
pub fn ready_reason(conditions: &[Condition]) -> Option<&str> {
    conditions
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| c.reason.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jiff_millis(ms: i64) -> k8s_openapi::jiff::SignedDuration {
        k8s_openapi::jiff::SignedDuration::from_millis(ms)
    }

    #[test]
    fn transition_time_survives_an_unchanged_status() {
        let t0 = Timestamp::from_second(100).unwrap();
        let t1 = Timestamp::from_second(200).unwrap();
        let first = ready(true, "A", "m".into(), Some(1), &[], t0);
        let same = ready(
            true,
            "B",
            "n".into(),
            Some(2),
            std::slice::from_ref(&first),
            t1,
        );
        assert_eq!(same.last_transition_time, Time(t0));
        let fractional = ready(true, "A", "m".into(), Some(1), &[], t0 + jiff_millis(999));
        assert_eq!(
            fractional.last_transition_time,
            Time(t0),
            "whole seconds, as the API stores it"
        );
        let flipped = ready(false, "C", "o".into(), Some(2), &[first], t1);
        assert_eq!(flipped.last_transition_time, Time(t1));
    }
}
