//! Connection limits of the token listener: a header-read timeout, an idle (keep-alive)
//! timeout and a cap on open connections, for plain HTTP and HTTPS alike.
//!
//! hyper's own `http1().header_read_timeout` starts its timer whenever a connection waits for a
//! request head, which includes the whole keep-alive idle time (hyper 1.x `proto/h1/conn.rs`,
//! `State::idle` then `Conn::poll_read_head`), and it does nothing for HTTP/2. So it cannot give
//! a short header timeout next to a longer keep-alive. This module keeps, per connection, what
//! the connection is doing and enforces both deadlines in the I/O it hands to hyper:
//!
//! - **reading a head**: from the accept (the first request), or from the first byte after an
//!   idle spell, until a request reaches the service: at most `header_read_timeout`. A client
//!   that sends its headers a byte at a time is closed then.
//! - **busy**: a request is being served; no deadline here (the router's request timeout and
//!   body limit bound it).
//! - **idle**: no request in flight, nothing received since the last response: at most
//!   `idle_timeout`. This also bounds a client that stops reading its responses.
//!
//! HTTP/2 connections are tracked the same way, per connection: any frame received while no
//! stream is in flight starts a head, so an HTTP/2 connection that only pings is closed after
//! `header_read_timeout`.
//!
//! At `max_connections`, a new connection takes the place of the oldest one that is not serving
//! a request (idle, or still sending its head), which is closed; only when every open connection
//! is serving a request is the new one refused. So idle or slow connections, however many, can
//! neither exhaust the process's file descriptors and memory nor keep other clients out.

mod guarded;
#[cfg(test)]
mod tests;

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::task::AtomicWaker;

pub use self::guarded::{Guarded, LimitAcceptor, Tracked};
use crate::token::metrics::ConnectionMetrics;

/// The listener's connection limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest time to receive a request head (from the accept, or the head's first byte).
    pub header_read_timeout: Duration,
    /// Longest time a connection may stay open without a request in flight.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            max_connections: 1024,
        }
    }
}

/// What a connection is doing, as far as its deadline goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for (the rest of) a request head since this instant.
    Head(Instant),
    /// Serving a request.
    Busy,
    /// Idle since this instant.
    Idle(Instant),
}

impl Phase {
    /// When the connection must be closed, if it stays in this phase.
    pub fn deadline(self, limits: &ConnectionLimits) -> Option<Instant> {
        match self {
            Self::Head(since) => Some(since + limits.header_read_timeout),
            Self::Busy => None,
            Self::Idle(since) => Some(since + limits.idle_timeout),
        }
    }

    /// Why a connection whose deadline passed in this phase is closed (a metrics label).
    pub fn timeout_reason(self) -> &'static str {
        match self {
            Self::Idle(_) => "idle_timeout",
            Self::Head(_) | Self::Busy => "header_timeout",
        }
    }
}

/// Set in `Conn::in_flight` once the connection was chosen to make room.
const EVICTED: usize = 1 << (usize::BITS - 1);
/// Set in `Conn::mark` while a head is being read.
const HEAD: u64 = 1;

/// One open connection, shared by its I/O and its service.
struct Conn {
    listener: Arc<Listener>,
    /// Requests in flight, and [`EVICTED`].
    in_flight: AtomicUsize,
    /// Nanoseconds since `listener.epoch` when the current head or idle spell began, shifted
    /// left by one, with [`HEAD`] while reading a head.
    mark: AtomicU64,
    /// The connection task, woken to close the connection when it is evicted.
    waker: AtomicWaker,
}

impl Conn {
    fn stamp(&self, at: Instant, head: bool) {
        let nanos = u64::try_from(at.duration_since(self.listener.epoch).as_nanos())
            .unwrap_or(u64::MAX >> 1);
        self.mark
            .store((nanos << 1) | u64::from(head), Ordering::Release);
    }

    fn phase(&self) -> Phase {
        if self.in_flight.load(Ordering::Acquire) & !EVICTED > 0 {
            return Phase::Busy;
        }
        let mark = self.mark.load(Ordering::Acquire);
        let since = self.listener.epoch + Duration::from_nanos(mark >> 1);
        if mark & HEAD == HEAD {
            Phase::Head(since)
        } else {
            Phase::Idle(since)
        }
    }

    fn evicted(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) & EVICTED != 0
    }

    /// Bytes arrived: an idle connection starts reading a head.
    fn received(&self) {
        if self.in_flight.load(Ordering::Acquire) & !EVICTED == 0
            && self.mark.load(Ordering::Acquire) & HEAD == 0
        {
            self.stamp(Instant::now(), true);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    fn request_ended(&self) {
        let before = self.in_flight.fetch_sub(1, Ordering::AcqRel);
        if before & !EVICTED == 1 {
            self.stamp(Instant::now(), false);
        }
    }

    /// Marks the connection evicted if it serves no request; wakes its task to close it.
    fn try_evict(&self) -> bool {
        let idle = self
            .in_flight
            .compare_exchange(0, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if idle {
            self.waker.wake();
        }
        idle
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // An evicted connection's slot went to the connection that replaced it.
        if !self.evicted() {
            self.listener.release();
        }
    }
}

/// How many connections of the eviction queue one accept looks at, at most.
const EVICTION_SCAN: usize = 64;

/// The open connections of one listener.
pub struct Listener {
    limits: ConnectionLimits,
    epoch: Instant,
    metrics: ConnectionMetrics,
    /// Connections counted against the cap.
    open: AtomicUsize,
    /// Open connections, oldest first (connections serving a request go to the back when an
    /// eviction passes them); dead entries are skipped and compacted away.
    queue: Mutex<VecDeque<Weak<Conn>>>,
}

impl Listener {
    pub fn new(limits: ConnectionLimits, metrics: ConnectionMetrics) -> Arc<Self> {
        Arc::new(Self {
            limits,
            epoch: Instant::now(),
            metrics,
            open: AtomicUsize::new(0),
            queue: Mutex::new(VecDeque::new()),
        })
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Admits a new connection, making room by evicting the oldest connection that serves no
    /// request; `None` when every connection is serving one.
    fn admit(self: &Arc<Self>) -> Option<Arc<Conn>> {
        let Ok(mut queue) = self.queue.lock() else {
            return None;
        };
        if self.open.load(Ordering::Acquire) >= self.limits.max_connections {
            if !evict_one(&mut queue) {
                self.metrics.closed("refused");
                return None;
            }
            self.metrics.closed("evicted");
        } else {
            self.open.fetch_add(1, Ordering::AcqRel);
            // Counted, not set from the count: a value read before another thread's update
            // and set after it would stay wrong.
            self.metrics.open.inc();
        }
        let conn = Arc::new(Conn {
            listener: self.clone(),
            in_flight: AtomicUsize::new(0),
            mark: AtomicU64::new(0),
            waker: AtomicWaker::new(),
        });
        // The first request's head is due `header_read_timeout` after the accept.
        conn.stamp(Instant::now(), true);
        queue.push_back(Arc::downgrade(&conn));
        if queue.len() > 2 * self.limits.max_connections + EVICTION_SCAN {
            queue.retain(|c| c.strong_count() > 0);
        }
        Some(conn)
    }

    fn release(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.metrics.open.dec();
    }
}

/// Evicts the oldest connection of `queue` that serves no request, looking at no more than
/// [`EVICTION_SCAN`] entries; busy ones move to the back.
fn evict_one(queue: &mut VecDeque<Weak<Conn>>) -> bool {
    for _ in 0..EVICTION_SCAN.min(queue.len()) {
        let Some(weak) = queue.pop_front() else {
            return false;
        };
        let Some(conn) = weak.upgrade() else {
            continue;
        };
        if conn.evicted() {
            continue;
        }
        if conn.try_evict() {
            return true;
        }
        queue.push_back(weak);
    }
    false
}
