use super::*;

fn limits(max: usize) -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(90),
        max_connections: max,
    }
}

#[test]
fn each_phase_has_its_deadline() {
    let t0 = Instant::now();
    let l = limits(1);
    assert_eq!(
        Phase::Head(t0).deadline(&l),
        Some(t0 + Duration::from_secs(10))
    );
    assert_eq!(
        Phase::Idle(t0).deadline(&l),
        Some(t0 + Duration::from_secs(90))
    );
    assert_eq!(Phase::Busy.deadline(&l), None);
    assert_eq!(Phase::Idle(t0).timeout_reason(), "idle_timeout");
    assert_eq!(Phase::Head(t0).timeout_reason(), "header_timeout");
}

#[test]
fn a_connection_reads_its_head_serves_then_idles_until_bytes_arrive() {
    let listener = Listener::new(limits(4), ConnectionMetrics::default());
    let conn = listener.admit().unwrap();
    assert!(
        matches!(conn.phase(), Phase::Head(_)),
        "the first head is due from the accept"
    );
    conn.received();
    conn.request_started();
    assert_eq!(conn.phase(), Phase::Busy);
    conn.request_started();
    conn.request_ended();
    assert_eq!(
        conn.phase(),
        Phase::Busy,
        "another request is still in flight"
    );
    conn.request_ended();
    let Phase::Idle(since) = conn.phase() else {
        panic!("idle after the last response: {:?}", conn.phase());
    };
    conn.received();
    assert!(
        matches!(conn.phase(), Phase::Head(at) if at >= since),
        "a byte after an idle spell starts a head"
    );
}

#[test]
fn at_the_cap_the_oldest_connection_not_serving_a_request_makes_room() {
    let metrics = ConnectionMetrics::default();
    let listener = Listener::new(limits(3), metrics.clone());
    let first = listener.admit().unwrap();
    let second = listener.admit().unwrap();
    let third = listener.admit().unwrap();
    assert_eq!(metrics.open.get(), 3);
    first.request_started();
    let fourth = listener.admit().expect("room is made");
    assert!(
        !first.evicted(),
        "a connection serving a request is never evicted"
    );
    assert!(second.evicted(), "the oldest idle one goes");
    assert!(!third.evicted());
    assert_eq!(metrics.open.get(), 3, "one out, one in");
    drop(second);
    assert_eq!(
        metrics.open.get(),
        3,
        "the evicted one's slot went to the new one"
    );
    third.request_started();
    fourth.request_started();
    assert!(
        listener.admit().is_none(),
        "every connection serves a request: the new one is refused"
    );
    fourth.request_ended();
    let fifth = listener.admit().expect("room once one is idle");
    assert!(fourth.evicted());
    drop((first, third, fourth, fifth));
    assert_eq!(metrics.open.get(), 0);
}

#[test]
fn the_queue_of_closed_connections_does_not_grow() {
    let listener = Listener::new(limits(2), ConnectionMetrics::default());
    for _ in 0..10_000 {
        drop(listener.admit().unwrap());
    }
    let queued = listener.queue.lock().unwrap().len();
    assert!(queued <= 2 * 2 + EVICTION_SCAN + 1, "{queued}");
}

#[test]
fn the_open_gauge_ends_at_zero_however_closes_and_accepts_interleave() {
    // Accepts and closes on several threads at once, as the runtime's workers do them; once
    // every connection is closed the gauge says so (it was set from a count read before
    // another thread's update, and could stay at 1 or more with nothing open).
    let metrics = ConnectionMetrics::default();
    let listener = Listener::new(limits(1 << 20), metrics.clone());
    for _ in 0..20 {
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..2_000 {
                        let held: Vec<_> = (0..4).map(|_| listener.admit().unwrap()).collect();
                        drop(held);
                    }
                });
            }
        });
        assert_eq!(listener.open.load(Ordering::Acquire), 0);
        assert_eq!(metrics.open.get(), 0, "nothing is open");
    }
}
