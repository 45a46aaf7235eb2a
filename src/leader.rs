//! Leader election on a `coordination.k8s.io` Lease (kube-lease-manager): only the holder runs
//! the controllers (the writers); every replica serves tokens. Losing the lease aborts the
//! controllers at once, before anyone else can acquire it (the lease is renewed `grace` seconds
//! before it expires).

use std::{future::Future, time::Duration};

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio_util::sync::CancellationToken;

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease lasts without renewal; a dead leader is replaced after at most this.
    pub duration: Duration,
    /// How long before expiry the holder renews.
    pub renew_before: Duration,
}

/// Leader election failed to start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start leader election on Lease {namespace}/{name}: {source}")]
pub struct LeaderError {
    namespace: String,
    name: String,
    #[source]
    source: kube_lease_manager::LeaseManagerError,
}

/// Runs `work` whenever this replica holds the lease, until `shutdown`. `work` gets a token that
/// is cancelled when leadership ends; its task is also aborted, so no write outlives the lease.
pub async fn run_while_leader<F, Fut>(
    client: Client,
    config: LeaseConfig,
    shutdown: CancellationToken,
    work: F,
) -> Result<(), LeaderError>
where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let manager = LeaseManagerBuilder::new(client, &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.duration.as_secs().max(2))
        .with_grace(config.renew_before.as_secs().max(1))
        .with_field_manager(crate::api::keys::FIELD_MANAGER)
        .build()
        .await
        .map_err(|source| LeaderError {
            namespace: config.namespace.clone(),
            name: config.name.clone(),
            source,
        })?;
    let (mut is_leader, lease_task) = manager.watch().await;
    loop {
        // Wait to become leader.
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = is_leader.changed() => if changed.is_err() { break },
        }
        if !*is_leader.borrow_and_update() {
            continue;
        }
        tracing::info!(identity = %config.identity, lease = %config.name, "acquired the lease; starting controllers");
        let token = shutdown.child_token();
        let mut task = tokio::spawn(work(token.clone()));
        let stop_reason = loop {
            tokio::select! {
                () = shutdown.cancelled() => break "shutdown",
                _ = &mut task => break "controllers stopped",
                changed = is_leader.changed() => {
                    if changed.is_err() { break "lease manager stopped" }
                    if !*is_leader.borrow_and_update() { break "lost the lease" }
                }
            }
        };
        token.cancel();
        if stop_reason == "shutdown" {
            // Let the controllers finish their current reconcile, briefly.
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut task).await;
        }
        task.abort();
        tracing::info!(reason = stop_reason, "stopped controllers");
        if stop_reason == "shutdown" {
            break;
        }
    }
    // Dropping the receiver makes the lease manager release the lease before it exits.
    drop(is_leader);
    match tokio::time::timeout(Duration::from_secs(5), lease_task).await {
        Ok(Ok(Ok(_))) => tracing::info!("released the lease"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "releasing the lease failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "lease task failed"),
        Err(_) => tracing::warn!("releasing the lease timed out"),
    }
    Ok(())
}
