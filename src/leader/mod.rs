//! Leader election on a `coordination.k8s.io` Lease, with fencing: only the holder runs the
//! controllers and the signing-key manager (the writers); every replica serves tokens.
//!
//! - Every write to the Lease is a compare-and-swap on the resourceVersion that was read, under
//!   a field manager of this replica's own (`m2m-operator-<identity>`).
//! - A follower takes the Lease only after seeing its record unchanged for a whole lease
//!   duration on its own monotonic clock ([`decide`]), never by comparing the holder's
//!   `renewTime` with its wall clock, so clock skew cannot make it take a live lease.
//! - The holder's controllers may write only until a local deadline: the send time of its last
//!   successful renewal + the lease duration - a margin (half of `renew_before`), on its
//!   monotonic clock ([`timing`]). At the deadline its tasks are cancelled and aborted; and
//!   every write of theirs goes through a client that checks the [`Fence`] against the clock
//!   just before sending, so even a process that wakes from a freeze past its deadline sends
//!   nothing before it has noticed.
//! - If one of the leader's tasks ends (panic or return), the replica stops the others, gives
//!   the Lease up and reports it ([`LeaderError::WorkEnded`]); it does not lead again.
//!
//! kube-lease-manager (used before) could not do this: it has no notion of a renewal deadline
//! (a failed renewal is retried with a backoff of up to 30 s while the controllers keep
//! running), a follower judges expiry by the holder's `renewTime` against its own clock, and
//! its renewals and forced releases carry no resourceVersion precondition.

mod decide;
mod elector;
#[cfg(test)]
mod elector_tests;
mod fence;
mod supervise;
mod timing;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

pub use fence::{Fence, NotLeader};
pub use supervise::{Ended, Work};
pub use timing::{Timing, TimingError};

use supervise::Running;

/// How long the leader's tasks get to finish their current work when told to stop.
const GRACE: Duration = Duration::from_secs(5);

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease lasts without renewal; a dead leader is replaced after about this.
    pub duration: Duration,
    /// How long before expiry the holder renews.
    pub renew_before: Duration,
}

/// Why leading ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("invalid leader election settings: {0}")]
    Settings(#[from] TimingError),
    /// One of the leader's tasks ended; the Lease was given up (when there was one).
    #[error("{0} while leading")]
    WorkEnded(Ended),
}

/// The Lease's field manager for this replica: `m2m-operator-<identity>`, cut to the API
/// server's limit of 128 bytes.
pub fn field_manager(identity: &str) -> String {
    const MAX: usize = 128;
    let mut name = format!("{}-{identity}", crate::api::names::FIELD_MANAGER);
    if name.len() > MAX {
        let cut = (0..=MAX)
            .rev()
            .find(|i| name.is_char_boundary(*i))
            .unwrap_or(0);
        name.truncate(cut);
    }
    name
}

/// Runs `work` whenever this replica holds the lease, until `shutdown`. `work` gets a token
/// that is cancelled when leadership ends; its tasks are also aborted, and `fence` refuses
/// their writes from the deadline on. Returns an error, after giving the lease up, when one
/// of the tasks ended by itself.
pub async fn run_while_leader<F>(
    client: Client,
    config: LeaseConfig,
    fence: Fence,
    shutdown: CancellationToken,
    work: F,
) -> Result<(), LeaderError>
where
    F: Fn(CancellationToken) -> Work,
{
    let timing = Timing::new(config.duration, config.renew_before)?;
    let elector = elector::Elector {
        api: Api::<Lease>::namespaced(client, &config.namespace),
        field_manager: field_manager(&config.identity),
        name: config.name,
        identity: config.identity,
        timing,
        fence,
    };
    match elector.run(shutdown, work).await {
        None => Ok(()),
        Some(ended) => Err(LeaderError::WorkEnded(ended)),
    }
}

/// Runs `work` without leader election (one replica), until `shutdown` or until one of its
/// tasks ends by itself (an error).
pub async fn run_unelected<F>(shutdown: CancellationToken, work: F) -> Result<(), LeaderError>
where
    F: Fn(CancellationToken) -> Work,
{
    let token = shutdown.child_token();
    let mut running = Running::spawn(work(token.clone()));
    let ended = tokio::select! {
        () = shutdown.cancelled() => None,
        ended = running.first_ended() => Some(ended),
    };
    token.cancel();
    if let Some(ended) = &ended {
        tracing::error!(task = ended.task, panicked = ended.panicked, "{ended}");
    }
    running.stop(GRACE).await;
    tracing::info!("stopped controllers");
    ended.map_or(Ok(()), |ended| Err(LeaderError::WorkEnded(ended)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_manager_names_the_replica_within_128_characters() {
        assert_eq!(field_manager("pod-7f9"), "m2m-operator-pod-7f9");
        let long = "é".repeat(200);
        let name = field_manager(&long);
        // 13 bytes of prefix, then as many 2-byte characters as fit.
        assert_eq!(name.len(), 127);
        assert!(name.starts_with("m2m-operator-é"));
    }
}
