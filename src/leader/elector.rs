//! The elector's I/O: reads and compare-and-swap writes of the Lease, and the loop that follows
//! or leads. Every decision comes from [`super::decide`] and [`super::timing`].

use std::time::{Duration, Instant};

use k8s_openapi::{api::coordination::v1::Lease, jiff::Timestamp};
use kube::{Api, api::PostParams};
use tokio::time::{sleep, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use super::{
    GRACE,
    decide::{self, Next, Observation, Record},
    fence::Fence,
    supervise::{Ended, Running, Work},
    timing::Timing,
};

pub(super) struct Elector {
    pub api: Api<Lease>,
    pub name: String,
    pub identity: String,
    pub field_manager: String,
    pub timing: Timing,
    pub fence: Fence,
}

/// A leadership term: the Lease as last written by this replica, and when that write was sent.
struct Term {
    lease: Lease,
    sent: Instant,
}

/// How a term ended.
pub(super) enum Outcome {
    Shutdown,
    /// Deposed or not renewed in time: follow again.
    NotLeader,
    WorkEnded(Ended),
}

/// A failed Lease request.
enum CallError {
    /// Someone else wrote the Lease since it was read (HTTP 409).
    Conflict,
    /// The Lease is gone (HTTP 404: deleted by hand).
    Gone,
    Failed(String),
}

impl Elector {
    fn params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..PostParams::default()
        }
    }

    async fn call<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, CallError> {
        match timeout(self.timing.call_timeout(), request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(kube::Error::Api(status))) if status.code == 409 => Err(CallError::Conflict),
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => Err(CallError::Gone),
            Ok(Err(e)) => Err(CallError::Failed(e.to_string())),
            Err(_) => Err(CallError::Failed("timed out".into())),
        }
    }

    /// Writes `lease` with this replica as holder (a compare-and-swap on its resourceVersion;
    /// a create when there is none yet).
    async fn claim(&self, lease: Option<Lease>, how: &Next) -> Result<Term, CallError> {
        let seconds = self.timing.duration_seconds();
        let sent = Instant::now();
        let written = match lease {
            Some(lease) => {
                let lease = decide::claimed(lease, &self.identity, how, Timestamp::now(), seconds);
                self.call(self.api.replace(&self.name, &self.params(), &lease))
                    .await?
            }
            None => {
                let lease = decide::created(&self.name, &self.identity, Timestamp::now(), seconds);
                self.call(self.api.create(&self.params(), &lease)).await?
            }
        };
        Ok(Term {
            lease: written,
            sent,
        })
    }

    /// Runs until `shutdown`, leading whenever this replica holds the Lease. Returns early only
    /// when one of the leader's tasks ended (after giving the Lease up).
    pub async fn run<F>(self, shutdown: CancellationToken, work: F) -> Option<Ended>
    where
        F: Fn(CancellationToken) -> Work,
    {
        loop {
            let term = self.follow(&shutdown).await?;
            match self.lead(term, &shutdown, &work).await {
                Outcome::Shutdown => return None,
                Outcome::NotLeader => {}
                Outcome::WorkEnded(ended) => return Some(ended),
            }
        }
    }

    /// Looks at the Lease until this replica holds it (`None`: shutdown first).
    async fn follow(&self, shutdown: &CancellationToken) -> Option<Term> {
        let mut observed: Option<Observation> = None;
        let mut last_holder: Option<String> = None;
        let mut warned_gone = false;
        loop {
            if shutdown.is_cancelled() {
                return None;
            }
            let wait = match self.call(self.api.get_opt(&self.name)).await {
                Ok(None) => {
                    let now = Instant::now();
                    match decide::create_at(observed.as_ref(), self.timing.duration()) {
                        Some(at) if now < at => {
                            if !std::mem::replace(&mut warned_gone, true) {
                                tracing::warn!(lease = %self.name, "the lease is gone while it was held; recreating it once it would have expired");
                            }
                            at.saturating_duration_since(now).min(self.timing.retry())
                        }
                        _ => match self.claim(None, &Next::Acquire).await {
                            Ok(term) => return Some(term),
                            Err(e) => self.retry_after(e, "creating the lease failed"),
                        },
                    }
                }
                Ok(Some(lease)) => {
                    let now = Instant::now();
                    let seen = decide::observe(observed.take(), Record::of(&lease), now);
                    let next = decide::next(&self.identity, &seen, now, self.timing.duration());
                    observed = Some(seen);
                    match next {
                        Next::Follow { holder, expires } => {
                            if last_holder.as_ref() != Some(&holder) {
                                tracing::info!(%holder, lease = %self.name, "the lease is held by another replica");
                                last_holder = Some(holder);
                            }
                            expires
                                .saturating_duration_since(now)
                                .min(self.timing.retry())
                        }
                        how => match self.claim(Some(lease), &how).await {
                            Ok(term) => return Some(term),
                            Err(e) => self.retry_after(e, "taking the lease failed"),
                        },
                    }
                }
                Err(e) => self.retry_after(e, "reading the lease failed"),
            };
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = sleep(wait) => {}
            }
        }
    }

    /// After a failed request: at once on a conflict (look again), else after `retry`.
    fn retry_after(&self, error: CallError, what: &str) -> Duration {
        match error {
            CallError::Conflict | CallError::Gone => Duration::ZERO,
            CallError::Failed(error) => {
                tracing::warn!(%error, lease = %self.name, "{what}; retrying");
                self.timing.retry()
            }
        }
    }

    /// Runs the leader's work for one term.
    async fn lead<F>(&self, mut term: Term, shutdown: &CancellationToken, work: &F) -> Outcome
    where
        F: Fn(CancellationToken) -> Work,
    {
        if self.timing.deadline(term.sent) <= Instant::now() {
            // The write took so long that its term is over already: start nothing.
            tracing::warn!(lease = %self.name, "taking the lease took longer than the lease lasts; not starting controllers");
            return Outcome::NotLeader;
        }
        self.fence.open_until(self.timing.deadline(term.sent));
        tracing::info!(identity = %self.identity, lease = %self.name, "acquired the lease; starting controllers");
        let token = shutdown.child_token();
        let mut running = Running::spawn(work(token.clone()));
        let mut next_renewal = self.timing.renew_at(term.sent);
        let stop = loop {
            let deadline = self.timing.deadline(term.sent);
            let lease = term.lease.clone();
            let renewal = async move {
                sleep_until(next_renewal.into()).await;
                (Instant::now(), self.renew(lease).await)
            };
            let renewed = tokio::select! {
                biased;
                () = sleep_until(deadline.into()) => break Stop::Deadline,
                () = shutdown.cancelled() => break Stop::Shutdown,
                ended = running.first_ended() => break Stop::WorkEnded(ended),
                renewed = renewal => renewed,
            };
            let (attempted, renewed) = renewed;
            match renewed {
                Renewal::Renewed(next) => {
                    term = next;
                    self.fence.open_until(self.timing.deadline(term.sent));
                    next_renewal = self.timing.renew_at(term.sent);
                }
                Renewal::Retry(fresh) => {
                    term.lease = fresh;
                    next_renewal = Instant::now() + Duration::from_millis(100);
                }
                Renewal::Failed(error) => {
                    tracing::warn!(%error, lease = %self.name, "renewing the lease failed; retrying until its deadline");
                    next_renewal = attempted + self.timing.retry();
                }
                Renewal::Lost(holder) => break Stop::Lost(holder),
            }
        };
        token.cancel();
        self.end_term(stop, term, running).await
    }

    /// Renews `lease` (a compare-and-swap on its resourceVersion).
    async fn renew(&self, lease: Lease) -> Renewal {
        match self.claim(Some(lease), &Next::Renew).await {
            Ok(term) => Renewal::Renewed(term),
            Err(CallError::Failed(error)) => Renewal::Failed(error),
            // Deleted: another replica may create it at once.
            Err(CallError::Gone) => Renewal::Lost(String::new()),
            // Written by someone else since: still ours (say, a label was added), or taken?
            Err(CallError::Conflict) => match self.call(self.api.get_opt(&self.name)).await {
                Ok(Some(fresh)) => match Record::of(&fresh).holder {
                    Some(h) if h == self.identity => Renewal::Retry(fresh),
                    other => Renewal::Lost(other.unwrap_or_default()),
                },
                Ok(None) | Err(CallError::Gone) => Renewal::Lost(String::new()),
                Err(CallError::Conflict) => Renewal::Failed("conflict".into()),
                Err(CallError::Failed(e)) => Renewal::Failed(e),
            },
        }
    }

    async fn end_term(&self, stop: Stop, term: Term, running: Running) -> Outcome {
        let deadline = self.timing.deadline(term.sent);
        match stop {
            Stop::Deadline | Stop::Lost(_) => {
                // The fence is already closed by the clock, or someone else holds the Lease:
                // abort at once, no grace.
                self.fence.close();
                running.stop(Duration::ZERO).await;
                match stop {
                    Stop::Lost(holder) => {
                        tracing::warn!(%holder, reason = "lost the lease", "stopped controllers")
                    }
                    _ => tracing::warn!(
                        reason = "the lease was not renewed before its deadline",
                        "stopped controllers"
                    ),
                }
                Outcome::NotLeader
            }
            Stop::Shutdown => {
                running.stop(grace_until(deadline)).await;
                tracing::info!(reason = "shutdown", "stopped controllers");
                self.release(term, deadline).await;
                Outcome::Shutdown
            }
            Stop::WorkEnded(ended) => {
                tracing::error!(
                    task = ended.task,
                    panicked = ended.panicked,
                    "{ended} while leading; giving the lease up"
                );
                running.stop(grace_until(deadline)).await;
                tracing::info!(reason = "a controller task ended", "stopped controllers");
                self.release(term, deadline).await;
                Outcome::WorkEnded(ended)
            }
        }
    }

    /// Gives the Lease up once every write this replica sent has been answered, so that no
    /// write of the old leader can land after the next one starts. If that does not happen by
    /// the deadline, the Lease is left to expire instead.
    async fn release(&self, term: Term, deadline: Instant) {
        self.fence.close();
        if !self.fence.drained(deadline).await {
            tracing::warn!(lease = %self.name, "a write is still unanswered; not releasing the lease, it expires instead");
            return;
        }
        let mut lease = term.lease;
        for _ in 0..2 {
            match self
                .call(self.api.replace(
                    &self.name,
                    &self.params(),
                    &decide::released(lease.clone()),
                ))
                .await
            {
                Ok(_) => {
                    tracing::info!(lease = %self.name, "released the lease");
                    return;
                }
                Err(CallError::Conflict) => match self.call(self.api.get_opt(&self.name)).await {
                    Ok(Some(fresh))
                        if Record::of(&fresh).holder.as_deref() == Some(&self.identity) =>
                    {
                        lease = fresh;
                    }
                    _ => return,
                },
                Err(CallError::Gone) => return,
                Err(CallError::Failed(error)) => {
                    tracing::warn!(%error, lease = %self.name, "releasing the lease failed; it expires instead");
                    return;
                }
            }
        }
    }
}

/// The grace for stopping, never past the deadline.
fn grace_until(deadline: Instant) -> Duration {
    GRACE.min(deadline.saturating_duration_since(Instant::now()))
}

enum Stop {
    Deadline,
    Shutdown,
    WorkEnded(Ended),
    Lost(String),
}

enum Renewal {
    Renewed(Term),
    /// Still ours, at a newer resourceVersion: renew again at once.
    Retry(Lease),
    Failed(String),
    Lost(String),
}
