//! How every watch of the operator retries after an error: exponentially from 500 ms, with
//! jitter, capped at [`MAX_DELAY`].
//!
//! kube's default (client-go's: 800 ms doubling to 30 s) suits a controller, whose cache only
//! delays work. Here the caches are what the token endpoint answers from: while the watch of
//! the client records waits out its backoff, a rotation or revocation is not seen, and a new
//! app the controller just made Ready is refused. An API server restart of ten seconds took
//! that watch to retries ~13 s apart, so it came back long after the API server did (CI failed
//! `an_api_server_restart_during_issue_and_rotation_loses_nothing` on it). A cap of 5 s bounds
//! that lag; the cost is one LIST per watch per 5 s while the API server is down.

use std::time::Duration;

use kube::runtime::{utils::ResetTimerBackoff, watcher::ExponentialBackoff};

/// The longest wait between two attempts of a failing watch.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
const MIN_DELAY: Duration = Duration::from_millis(500);
/// A watch that has not failed for this long starts again from [`MIN_DELAY`].
const RESET_AFTER: Duration = Duration::from_secs(120);

/// The backoff of a watch (each watch needs its own).
pub fn watch_backoff() -> ResetTimerBackoff<ExponentialBackoff> {
    let exponential = backon::ExponentialBuilder::default()
        .with_min_delay(MIN_DELAY)
        .with_max_delay(MAX_DELAY)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    ResetTimerBackoff::new(exponential.into(), RESET_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_watch_retries_at_least_every_five_seconds() {
        let delays: Vec<Duration> = watch_backoff().take(40).collect();
        assert_eq!(delays.len(), 40, "it never gives up");
        // Jitter adds up to one more delay to each step.
        assert!(delays.iter().all(|d| *d <= 2 * MAX_DELAY), "{delays:?}");
        assert!(delays[0] >= MIN_DELAY && delays[0] < 2 * MIN_DELAY + Duration::from_millis(1));
        let kube_default: Vec<Duration> = kube::runtime::watcher::DefaultBackoff::default()
            .take(40)
            .collect();
        assert!(
            kube_default.iter().any(|d| *d > 2 * MAX_DELAY),
            "{kube_default:?}"
        );
    }
}
