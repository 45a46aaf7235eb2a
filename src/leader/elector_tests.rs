//! Two electors against an in-memory Lease API (compare-and-swap on resourceVersion, like the
//! API server), with real timing: their fences are never open at the same moment, including
//! when the leader's requests hang for longer than the lease.

#![allow(clippy::unwrap_used)]

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Client, client::Body};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::*;

#[derive(Default)]
struct FakeApi {
    lease: Mutex<Option<Lease>>,
    version: AtomicU64,
}

fn answer(code: u16, body: serde_json::Value) -> http::Response<Body> {
    http::Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string().into_bytes()))
        .unwrap()
}

fn failure(code: u16, reason: &str) -> http::Response<Body> {
    answer(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": reason, "reason": reason, "code": code}),
    )
}

impl FakeApi {
    fn handle(&self, method: &http::Method, body: &[u8]) -> http::Response<Body> {
        let mut stored = self.lease.lock().unwrap();
        if *method == http::Method::GET {
            return match &*stored {
                Some(lease) => answer(200, json!(lease)),
                None => failure(404, "NotFound"),
            };
        }
        let Ok(mut lease) = serde_json::from_slice::<Lease>(body) else {
            return failure(400, "BadRequest");
        };
        match (method.as_str(), &*stored) {
            ("POST", Some(_)) => return failure(409, "AlreadyExists"),
            ("PUT", None) => return failure(404, "NotFound"),
            ("PUT", Some(current))
                if current.metadata.resource_version != lease.metadata.resource_version =>
            {
                return failure(409, "Conflict");
            }
            _ => {}
        }
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        lease.metadata.resource_version = Some(version.to_string());
        *stored = Some(lease.clone());
        answer(200, json!(lease))
    }

    fn holder(&self) -> Option<String> {
        let stored = self.lease.lock().unwrap();
        decide::Record::of(stored.as_ref()?).holder
    }
}

/// A client of `api` whose requests hang while `cut` is set (a partition).
fn client(api: Arc<FakeApi>, cut: Arc<AtomicBool>) -> Client {
    let service = tower::service_fn(move |request: http::Request<Body>| {
        let (api, cut) = (api.clone(), cut.clone());
        async move {
            while cut.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let (parts, body) = request.into_parts();
            let body = body.collect_bytes().await.unwrap_or_default();
            Ok::<_, Infallible>(api.handle(&parts.method, &body))
        }
    });
    Client::new(service, "default")
}

fn config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: "default".into(),
        name: "lease".into(),
        identity: identity.into(),
        duration: Duration::from_secs(2),
        renew_before: Duration::from_millis(800),
    }
}

fn idle(token: CancellationToken) -> Work {
    let work: BoxFuture<'static, ()> = Box::pin(async move { token.cancelled().await });
    vec![("controllers", work)]
}

async fn wait_until(what: &str, within: Duration, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_leader_cut_off_from_the_api_stops_before_the_standby_starts() {
    let api = Arc::new(FakeApi::default());
    let (cut_a, cut_b) = (Arc::new(AtomicBool::new(false)), Arc::default());
    let (fence_a, fence_b) = (Fence::closed(), Fence::closed());
    let shutdown = CancellationToken::new();
    tokio::spawn(run_while_leader(
        client(api.clone(), cut_a.clone()),
        config("a"),
        fence_a.clone(),
        shutdown.clone(),
        idle,
    ));
    wait_until("a leads", Duration::from_secs(2), || {
        fence_a.is_leader_now()
    })
    .await;
    tokio::spawn(run_while_leader(
        client(api.clone(), cut_b),
        config("b"),
        fence_b.clone(),
        shutdown.clone(),
        idle,
    ));
    // Sample both fences, by the clock, while a's requests hang for twice the lease.
    let both = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (a, b, both, shutdown) = (
            fence_a.clone(),
            fence_b.clone(),
            both.clone(),
            shutdown.clone(),
        );
        async move {
            while !shutdown.is_cancelled() {
                if a.is_leader_now() && b.is_leader_now() {
                    both.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(api.holder().as_deref(), Some("a"), "a keeps renewing");
    cut_a.store(true, Ordering::SeqCst);
    wait_until("b takes over", Duration::from_secs(6), || {
        fence_b.is_leader_now()
    })
    .await;
    assert!(!fence_a.is_leader_now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    cut_a.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        api.holder().as_deref(),
        Some("b"),
        "a, reachable again, does not take the lease back"
    );
    assert!(fence_b.is_leader_now() && !fence_a.is_leader_now());
    shutdown.cancel();
    let _ = sampler.await;
    assert!(
        !both.load(Ordering::SeqCst),
        "both fences were open at once"
    );
}

#[tokio::test]
async fn a_leader_whose_task_panics_releases_the_lease_and_says_why() {
    let api = Arc::new(FakeApi::default());
    let fence = Fence::closed();
    let panicking = |_token: CancellationToken| -> Work {
        let work: BoxFuture<'static, ()> = Box::pin(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            panic!("boom");
        });
        vec![("controllers", work)]
    };
    let result = run_while_leader(
        client(api.clone(), Arc::default()),
        config("a"),
        fence.clone(),
        CancellationToken::new(),
        panicking,
    )
    .await;
    let Err(LeaderError::WorkEnded(ended)) = result else {
        panic!("expected WorkEnded, got {result:?}");
    };
    assert_eq!(ended.to_string(), "the controllers task panicked");
    assert_eq!(api.holder(), None, "the lease was released");
    assert!(!fence.is_leader_now());
}
