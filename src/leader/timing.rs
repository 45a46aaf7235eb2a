//! When the holder renews, when it must stop, how often everyone retries (pure).
//!
//! All instants here are on this replica's monotonic clock: the holder's deadline is measured
//! from the moment it *sent* its last successful renewal, which is before the API server stored
//! it and so before any other replica could have seen it.

use std::time::{Duration, Instant};

/// Settings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error("--lease-duration must be at least 1s (got {0:?})")]
    DurationTooShort(Duration),
    #[error(
        "--lease-renew-before must be at least 200ms and below --lease-duration (got {renew_before:?} with a {duration:?} lease)"
    )]
    RenewBefore {
        duration: Duration,
        renew_before: Duration,
    },
}

/// The lease's timing, from `--lease-duration` and `--lease-renew-before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    duration: Duration,
    renew_before: Duration,
}

impl Timing {
    pub fn new(duration: Duration, renew_before: Duration) -> Result<Self, TimingError> {
        if duration < Duration::from_secs(1) {
            return Err(TimingError::DurationTooShort(duration));
        }
        if renew_before < Duration::from_millis(200) || renew_before >= duration {
            return Err(TimingError::RenewBefore {
                duration,
                renew_before,
            });
        }
        Ok(Self {
            duration,
            renew_before,
        })
    }

    /// How long the lease lasts without renewal.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// `leaseDurationSeconds` as written: whole seconds, rounded up, so that other replicas
    /// never wait less than this replica's own `duration`.
    pub fn duration_seconds(&self) -> i32 {
        let secs = self.duration.as_secs() + u64::from(self.duration.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }

    /// How long before another replica could take the lease the holder stops its controllers:
    /// half of `renew_before`. It covers the time a write that passed the fence needs to reach
    /// the API server, and clocks that run at slightly different rates.
    pub fn margin(&self) -> Duration {
        self.renew_before / 2
    }

    /// The holder's controllers must have stopped by then (a renewal sent at `sent` succeeded).
    pub fn deadline(&self, sent: Instant) -> Instant {
        sent + (self.duration - self.margin())
    }

    /// When the holder sends its next renewal after one sent at `sent` succeeded.
    pub fn renew_at(&self, sent: Instant) -> Instant {
        sent + (self.duration - self.renew_before)
    }

    /// Time from the start of one attempt to the start of the next (a failed renewal, a
    /// follower's look at the lease): a quarter of `renew_before`, between 100ms and 2s, so a
    /// holder whose requests hang still gets two attempts before its deadline.
    pub fn retry(&self) -> Duration {
        (self.renew_before / 4).clamp(Duration::from_millis(100), Duration::from_secs(2))
    }

    /// Longest wait for one Lease request: one `retry`, at least 500ms.
    pub fn call_timeout(&self) -> Duration {
        self.retry().max(Duration::from_millis(500))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_deadline_falls_after_the_renewal_and_before_the_lease_expires() {
        let timing = Timing::new(Duration::from_secs(15), Duration::from_secs(5)).unwrap();
        let sent = Instant::now();
        assert_eq!(timing.renew_at(sent), sent + Duration::from_secs(10));
        assert_eq!(timing.deadline(sent), sent + Duration::from_millis(12_500));
        // Two attempts that each hang until their timeout fit before the deadline.
        assert!(timing.renew_at(sent) + timing.call_timeout() * 2 <= timing.deadline(sent));
        let test = Timing::new(Duration::from_secs(6), Duration::from_secs(2)).unwrap();
        assert!(test.renew_at(sent) + test.call_timeout() * 2 <= test.deadline(sent));
        assert_eq!(timing.duration_seconds(), 15);
    }

    #[test]
    fn a_fractional_duration_is_written_rounded_up() {
        let timing = Timing::new(Duration::from_millis(1500), Duration::from_millis(500)).unwrap();
        assert_eq!(timing.duration_seconds(), 2);
    }

    #[test]
    fn settings_that_leave_no_time_to_renew_are_refused() {
        let secs = Duration::from_secs;
        assert!(matches!(
            Timing::new(secs(5), secs(5)),
            Err(TimingError::RenewBefore { .. })
        ));
        assert!(matches!(
            Timing::new(secs(5), Duration::from_millis(100)),
            Err(TimingError::RenewBefore { .. })
        ));
        assert!(matches!(
            Timing::new(Duration::from_millis(900), Duration::from_millis(300)),
            Err(TimingError::DurationTooShort(_))
        ));
    }
}
