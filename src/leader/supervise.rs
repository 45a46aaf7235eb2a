//! The leader's tasks (the controllers, the signing-key manager), each on its own tokio task:
//! the first one to end, by panic or by returning, is reported, because none of them may end
//! while this replica leads.

use std::{collections::HashMap, fmt, future::pending, time::Duration};

use futures::future::BoxFuture;
use tokio::task::{Id, JoinSet};

/// The leader's work: named futures that run until the token they were built with is cancelled.
pub type Work = Vec<(&'static str, BoxFuture<'static, ()>)>;

/// A task that ended while it should have kept running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    pub task: &'static str,
    pub panicked: bool,
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.panicked { "panicked" } else { "ended" };
        write!(f, "the {} task {how}", self.task)
    }
}

/// The running tasks of one leadership term.
pub struct Running {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

impl Running {
    /// Spawns every future of `work`.
    pub fn spawn(work: Work) -> Self {
        let mut set = JoinSet::new();
        let mut names = HashMap::new();
        for (name, future) in work {
            let handle = set.spawn(future);
            names.insert(handle.id(), name);
        }
        Self { set, names }
    }

    /// Waits for the first task to end; never returns when there are none. Cancel-safe.
    pub async fn first_ended(&mut self) -> Ended {
        let (id, panicked) = match self.set.join_next_with_id().await {
            Some(Ok((id, ()))) => (id, false),
            Some(Err(e)) => (e.id(), e.is_panic()),
            None => pending().await,
        };
        Ended {
            task: self.names.get(&id).copied().unwrap_or("leader"),
            panicked,
        }
    }

    /// The tasks were told to stop: lets them finish for up to `grace`, then aborts the rest,
    /// and returns once every task is gone.
    pub async fn stop(mut self, grace: Duration) {
        let _ = tokio::time::timeout(grace, async {
            while self.set.join_next().await.is_some() {}
        })
        .await;
        self.set.abort_all();
        while self.set.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use tokio_util::sync::CancellationToken;

    use super::*;

    fn forever() -> BoxFuture<'static, ()> {
        Box::pin(pending())
    }

    #[tokio::test]
    async fn a_panicking_task_is_reported_by_name() {
        let mut running = Running::spawn(vec![
            ("controllers", Box::pin(async { panic!("boom") })),
            ("signing-key manager", forever()),
        ]);
        assert_eq!(
            running.first_ended().await,
            Ended {
                task: "controllers",
                panicked: true
            }
        );
        running.stop(Duration::ZERO).await;
    }

    #[tokio::test]
    async fn a_task_that_returns_is_reported_too() {
        let mut running = Running::spawn(vec![
            ("controllers", forever()),
            ("signing-key manager", Box::pin(async {})),
        ]);
        let ended = running.first_ended().await;
        assert_eq!(ended.to_string(), "the signing-key manager task ended");
        running.stop(Duration::ZERO).await;
    }

    #[tokio::test]
    async fn stop_waits_for_a_task_that_stops_when_told_and_aborts_one_that_does_not() {
        let token = CancellationToken::new();
        let finished = Arc::new(AtomicBool::new(false));
        let (t, f) = (token.clone(), finished.clone());
        let running = Running::spawn(vec![
            (
                "polite",
                Box::pin(async move {
                    t.cancelled().await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    f.store(true, Ordering::SeqCst);
                }),
            ),
            ("stubborn", forever()),
        ]);
        token.cancel();
        running.stop(Duration::from_millis(500)).await;
        assert!(finished.load(Ordering::SeqCst));
    }
}
