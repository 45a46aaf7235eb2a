//! Building `Ready` conditions.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

use crate::api::conditions::READY;

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
        .unwrap_or(Time(now));
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
        let flipped = ready(false, "C", "o".into(), Some(2), &[first], t1);
        assert_eq!(flipped.last_transition_time, Time(t1));
    }
}
