//! The controllers' argon2id pool: at most one hash or check per core at a time, on blocking
//! threads (a hash takes 256 KiB and ~0.1 ms; a check of a hash made before the parameters
//! changed, 19 MiB and ~20 ms).

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::Error;
use crate::metrics::Metrics;

/// Bounds concurrent argon2id work of the controllers.
pub struct HashingPool {
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl HashingPool {
    pub fn new(workers: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(workers.max(1))),
            metrics,
        }
    }

    /// Runs `work` (an argon2id operation, timed as `op`) on a blocking thread once a slot is
    /// free. The slot is held by the blocking job itself, so a reconcile that is dropped while
    /// the job runs does not free it early.
    pub async fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Inconsistent("the hashing pool is closed"))?;
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = permit;
            metrics.time_argon2(op, work)
        })
        .await
        .map_err(Error::Blocking)
    }
}
