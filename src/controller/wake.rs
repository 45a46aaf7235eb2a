//! When a controller looks at an object again. Every object is reconciled on every change and
//! at every periodic resync (all of them at once, [`resync_ticks`]); an object is queued for a
//! time of its own only when something of its own is due before the next resync (a grace
//! period's end, a scheduled rotation, a retry). kube's queue holds each entry's `ObjectRef`
//! twice with four strings each (~0.9 KB per app at 10,000, heaptrack), so an app with nothing
//! due holds none.

use std::time::Duration;

use futures::Stream;
use kube::runtime::controller::Action;

/// How much later than due an object is looked at (a clock read a little early is not due yet).
pub const SLACK: Duration = Duration::from_millis(100);

/// The action for a reconcile whose object has the given things due (after how long each):
/// requeued for the soonest, if it is due before the next resync, else left to changes and the
/// resync.
pub fn after(due: impl IntoIterator<Item = Option<Duration>>, resync: Duration) -> Action {
    match due.into_iter().flatten().min() {
        Some(soonest) if soonest < resync => Action::requeue(soonest + SLACK),
        _ => Action::await_change(),
    }
}

/// A stream that yields once every `resync`, the first time `resync` from now (the controllers
/// reconcile everything once at start on their own).
pub fn resync_ticks(resync: Duration) -> impl Stream<Item = ()> + Send + 'static {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + resync, resync);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures::stream::unfold(ticks, |mut ticks| async move {
        ticks.tick().await;
        Some(((), ticks))
    })
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_soonest_due_before_the_resync_is_requeued_else_nothing() {
        let s = Duration::from_secs;
        assert_eq!(
            after([Some(s(90)), None, Some(s(30))], HOUR),
            Action::requeue(s(30) + SLACK)
        );
        assert_eq!(after([None, None], HOUR), Action::await_change());
        assert_eq!(
            after([Some(s(30 * 24 * 3600))], HOUR),
            Action::await_change(),
            "a rotation in 30 days is the resync's to find"
        );
        assert_eq!(after([Some(HOUR)], HOUR), Action::await_change());
        assert_eq!(after([Some(Duration::ZERO)], HOUR), Action::requeue(SLACK));
    }

    #[tokio::test]
    async fn resync_ticks_come_once_per_period_and_not_at_once() {
        let period = Duration::from_millis(40);
        let start = tokio::time::Instant::now();
        let mut ticks = std::pin::pin!(resync_ticks(period));
        ticks.next().await;
        assert!(start.elapsed() >= period, "no tick at the start");
        ticks.next().await;
        assert!(start.elapsed() >= 2 * period);
    }
}
