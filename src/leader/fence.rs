//! The fence: whether this replica may write as the leader *right now*, and a Kubernetes client
//! that checks it before every write it sends.
//!
//! The answer is computed from the monotonic clock at the moment of the check, not set by the
//! elector's task: a process that was frozen (SIGSTOP, a paused VM, a long GC-like stall) and
//! wakes up past its deadline refuses writes at once, even if some controller task runs before
//! the elector has noticed anything.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use kube::{Client, client::Body};
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use tokio::sync::watch;
use tower::BoxError;

/// A write refused because this replica does not hold the Lease (or its deadline passed).
#[derive(Debug, thiserror::Error)]
#[error("write refused: this replica does not hold the leader Lease")]
pub struct NotLeader;

/// Cheap to clone; every clone shares the same state.
#[derive(Clone, Debug)]
pub struct Fence {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    origin: Instant,
    /// Writes are allowed until `origin` + this many nanoseconds; 0: closed; `u64::MAX`: open
    /// for good (no leader election).
    until: AtomicU64,
    /// Writes admitted and not answered yet.
    in_flight: watch::Sender<usize>,
    refused: Counter,
    leading: Gauge,
}

impl Fence {
    /// A fence that admits nothing until the elector opens it.
    pub fn closed() -> Self {
        Self::with_until(0)
    }

    /// A fence that is always open: leader election is off (one replica).
    pub fn always_open() -> Self {
        let fence = Self::with_until(u64::MAX);
        fence.inner.leading.set(1);
        fence
    }

    fn with_until(until: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                origin: Instant::now(),
                until: AtomicU64::new(until),
                in_flight: watch::Sender::new(0),
                refused: Counter::default(),
                leading: Gauge::default(),
            }),
        }
    }

    /// Registers `m2m_leader` and `m2m_leader_writes_refused_total`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and runs the controllers",
            self.inner.leading.clone(),
        );
        registry.register(
            "leader_writes_refused",
            "Controller writes refused because this replica did not hold the Lease",
            self.inner.refused.clone(),
        );
    }

    /// Whether this replica may write as the leader now.
    pub fn is_leader_now(&self) -> bool {
        self.is_leader_at(Instant::now())
    }

    /// Whether this replica may write as the leader at `now`.
    pub fn is_leader_at(&self, now: Instant) -> bool {
        match self.inner.until.load(Ordering::SeqCst) {
            0 => false,
            u64::MAX => true,
            until => {
                now.saturating_duration_since(self.inner.origin).as_nanos() < u128::from(until)
            }
        }
    }

    /// Admits writes until `deadline`.
    pub(crate) fn open_until(&self, deadline: Instant) {
        let nanos = deadline
            .saturating_duration_since(self.inner.origin)
            .as_nanos();
        let until = u64::try_from(nanos)
            .unwrap_or(u64::MAX - 1)
            .clamp(1, u64::MAX - 1);
        self.inner.until.store(until, Ordering::SeqCst);
        self.inner.leading.set(1);
    }

    /// Admits no more writes.
    pub(crate) fn close(&self) {
        self.inner.until.store(0, Ordering::SeqCst);
        self.inner.leading.set(0);
    }

    /// Waits until every admitted write has been answered, or until `by`; true when drained.
    pub(crate) async fn drained(&self, by: Instant) -> bool {
        let mut count = self.inner.in_flight.subscribe();
        let wait = count.wait_for(|n| *n == 0);
        matches!(tokio::time::timeout_at(by.into(), wait).await, Ok(Ok(_)))
    }

    /// Admits one write: counted first, then checked, so that a writer either is seen by
    /// [`Fence::drained`] or sees the fence closed.
    fn admit(&self) -> Option<InFlight> {
        self.inner.in_flight.send_modify(|n| *n += 1);
        let guard = InFlight(self.clone());
        if self.is_leader_now() {
            Some(guard)
        } else {
            self.inner.refused.inc();
            None
        }
    }

    /// A client that sends reads as `client` does and refuses every write while this replica
    /// is not the leader. An admitted write runs to its answer even if the caller is dropped
    /// (its task aborted), so that releasing the Lease can wait for it.
    pub fn client(&self, client: Client) -> Client {
        let namespace = client.default_namespace().to_owned();
        Client::new(
            Fenced {
                inner: client,
                fence: self.clone(),
            },
            namespace,
        )
    }
}

/// One admitted write, until answered.
struct InFlight(Fence);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .inner
            .in_flight
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[derive(Clone)]
struct Fenced {
    inner: Client,
    fence: Fence,
}

fn is_read(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    )
}

impl tower::Service<http::Request<Body>> for Fenced {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<http::Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let client = self.inner.clone();
        if is_read(request.method()) {
            return Box::pin(async move { client.send(request).await.map_err(BoxError::from) });
        }
        let Some(guard) = self.fence.admit() else {
            return Box::pin(futures::future::ready(Err(BoxError::from(NotLeader))));
        };
        let write = tokio::spawn(async move {
            let answer = client.send(request).await;
            drop(guard);
            answer
        });
        Box::pin(async move {
            match write.await {
                Ok(answer) => answer.map_err(BoxError::from),
                Err(e) => Err(BoxError::from(e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::{Api, api::PostParams};

    use super::*;

    #[test]
    fn the_fence_closes_by_the_clock_alone() {
        let fence = Fence::closed();
        let now = Instant::now();
        assert!(!fence.is_leader_at(now));
        fence.open_until(now + Duration::from_secs(10));
        assert!(fence.is_leader_at(now + Duration::from_secs(9)));
        // Nobody called close(): a process waking up past its deadline is not the leader.
        assert!(!fence.is_leader_at(now + Duration::from_secs(10)));
        assert!(!fence.is_leader_at(now + Duration::from_secs(3600)));
        fence.close();
        assert!(!fence.is_leader_at(now));
        assert!(Fence::always_open().is_leader_at(now + Duration::from_secs(1 << 40)));
    }

    /// A client whose API server never answers (nothing listens on port 9).
    fn unreachable_client() -> Client {
        Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap()
    }

    #[tokio::test]
    async fn a_write_past_the_deadline_is_refused_before_it_is_sent() {
        let fence = Fence::closed();
        let mut registry = Registry::default();
        fence.register(&mut registry);
        // Open until a moment that has already passed, as after a freeze.
        fence.open_until(Instant::now());
        let api: Api<ConfigMap> = Api::namespaced(fence.client(unreachable_client()), "default");
        let err = api
            .create(&PostParams::default(), &ConfigMap::default())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("does not hold the leader Lease"),
            "{err}"
        );
        assert_eq!(fence.inner.refused.get(), 1);
        // Reads pass (and fail here only because nothing answers).
        let read = api.get("x").await.unwrap_err();
        assert!(!read.to_string().contains("leader"), "{read}");
        assert_eq!(fence.inner.refused.get(), 1);
    }

    #[tokio::test]
    async fn release_waits_for_an_admitted_write_even_when_its_caller_is_gone() {
        // An API server that accepts the connection and answers only when told to.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (answer_tx, answer_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let _ = answer_rx.await;
            use tokio::io::AsyncWriteExt;
            let _ = socket
                .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}")
                .await;
        });
        let client =
            Client::try_from(kube::Config::new(format!("http://{addr}").parse().unwrap())).unwrap();
        let fence = Fence::closed();
        fence.open_until(Instant::now() + Duration::from_secs(60));
        let api: Api<ConfigMap> = Api::namespaced(fence.client(client), "default");
        let caller = tokio::spawn(async move {
            let _ = api
                .create(&PostParams::default(), &ConfigMap::default())
                .await;
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        caller.abort();
        fence.close();
        let soon = Instant::now() + Duration::from_millis(300);
        assert!(
            !fence.drained(soon).await,
            "the write is still in flight after its caller was aborted"
        );
        answer_tx.send(()).unwrap();
        assert!(fence.drained(Instant::now() + Duration::from_secs(5)).await);
    }
}
