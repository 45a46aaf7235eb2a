use super::*;
use crate::credentials::{
    generate::ClientSecret,
    record::{AppKey, Previous},
};

fn record(secret: &str) -> ClientRecord {
    ClientRecord {
        client_id: "m2m_1".into(),
        app: AppKey {
            namespace: "n".into(),
            name: "a".into(),
            uid: "u".into(),
        },
        current: Some(hash::hash(&ClientSecret::new(secret)).unwrap()),
        pending: None,
        previous: None,
        revision: 1,
        last_rotation_time: Timestamp::UNIX_EPOCH,
        handled_rotate_request: None,
        handled_revoke_request: None,
        organization_uid: None,
    }
}

#[tokio::test]
async fn verifies_once_then_remembers_until_the_hash_is_dropped() {
    let v = Verifier::new(2, 10);
    let now = Timestamp::UNIX_EPOCH;
    let mut rec = record("right");
    assert_eq!(v.remembered("m2m_1", "right", &rec, now), None);
    assert_eq!(v.verify("m2m_1", "wrong", &rec, now).await, Ok(None));
    assert_eq!(
        v.verify("m2m_1", "right", &rec, now).await,
        Ok(Some(SecretKind::Current))
    );
    assert_eq!(
        v.remembered("m2m_1", "right", &rec, now),
        Some(SecretKind::Current)
    );
    assert_eq!(v.remembered("m2m_1", "wrong", &rec, now), None);
    assert_eq!(
        v.remembered("m2m_2", "right", &rec, now),
        None,
        "proofs are per client"
    );

    // Rotated: the old hash becomes previous, then expires.
    let old = rec.current.clone().unwrap();
    rec.current = Some(hash::hash(&ClientSecret::new("new")).unwrap());
    rec.previous = Some(Box::new(Previous {
        hash: old,
        expires_at: Timestamp::from_second(10).unwrap(),
    }));
    assert_eq!(
        v.remembered("m2m_1", "right", &rec, now),
        Some(SecretKind::Previous)
    );
    let later = Timestamp::from_second(10).unwrap();
    assert_eq!(v.remembered("m2m_1", "right", &rec, later), None);
    assert_eq!(v.verify("m2m_1", "right", &rec, later).await, Ok(None));
}

#[tokio::test]
async fn retain_forgets_the_proofs_of_removed_clients() {
    let v = Verifier::new(1, 4);
    let rec = record("right");
    let now = Timestamp::UNIX_EPOCH;
    assert_eq!(
        v.verify("m2m_1", "right", &rec, now).await,
        Ok(Some(SecretKind::Current))
    );
    v.retain(|id| id != "m2m_1");
    assert_eq!(v.remembered("m2m_1", "right", &rec, now), None);
}

#[tokio::test]
async fn a_full_queue_is_busy() {
    let v = Verifier::new(1, 0);
    let rec = record("right");
    assert_eq!(
        v.verify("m2m_1", "right", &rec, Timestamp::UNIX_EPOCH)
            .await,
        Err(Busy)
    );
}

/// Starts `n` checks of a wrong secret at once and cancels each after `after(i)`, as a client
/// that hangs up does; returns when every one of them has been dropped.
async fn cancelled_wave(
    v: &Arc<Verifier>,
    rec: &Arc<ClientRecord>,
    n: usize,
    after: impl Fn(usize) -> std::time::Duration,
) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (v, rec, after) = (v.clone(), rec.clone(), after(i));
            tokio::spawn(async move {
                let check = v.verify("m2m_1", "wrong", &rec, Timestamp::UNIX_EPOCH);
                let _ = tokio::time::timeout(after, check).await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Waits until no job runs and nothing is admitted (the cancelled jobs finish on their own).
async fn settle(v: &Verifier) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while v.gauges().running.get() != 0 || v.gauges().admitted.get() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "running {} admitted {}",
            v.gauges().running.get(),
            v.gauges().admitted.get()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_checks_leave_the_admission_so_a_new_client_is_admitted_at_once() {
    let v = Arc::new(Verifier::new(1, 4));
    let rec = Arc::new(record("right"));
    // Waves of checks that are dropped while queued or running, each wave more than the
    // admission holds.
    for _ in 0..5 {
        cancelled_wave(&v, &rec, 8, |_| std::time::Duration::from_millis(5)).await;
    }
    // At once, without waiting for the cancelled jobs: a new client's first request.
    let mut fresh = record("new-app");
    fresh.client_id = "m2m_2".into();
    assert_eq!(
        v.verify("m2m_2", "new-app", &fresh, Timestamp::UNIX_EPOCH)
            .await,
        Ok(Some(SecretKind::Current)),
        "a new client is admitted after any number of cancelled checks"
    );
    settle(&v).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_never_exceed_the_workers_however_many_checks_are_cancelled() {
    let v = Arc::new(Verifier::new(2, 64));
    let rec = Arc::new(record("right"));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (gauge, stop) = (v.gauges().running.clone(), stop.clone());
        move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(gauge.get());
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
            peak
        }
    });
    for _ in 0..10 {
        cancelled_wave(&v, &rec, 12, |i| {
            std::time::Duration::from_millis(2 + 3 * i as u64)
        })
        .await;
    }
    settle(&v).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    assert!(peak >= 1, "the jobs ran");
    assert!(peak <= 2, "{peak} argon2id jobs ran at once on 2 workers");
}
