//! The I/O, service and acceptor that apply [`super::Listener`]'s limits to one connection.

use std::{
    future::{Future, Ready},
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::Sleep,
};

use super::{Conn, Listener, Phase};

/// Admits each accepted TCP connection into the [`Listener`] (or refuses it), sets
/// `TCP_NODELAY` (a response is one small write; never hold it back for an ACK), and wraps its
/// I/O and service.
#[derive(Clone)]
pub struct LimitAcceptor {
    listener: Arc<Listener>,
}

impl LimitAcceptor {
    pub fn new(listener: Arc<Listener>) -> Self {
        Self { listener }
    }
}

impl<S> axum_server::accept::Accept<TcpStream, S> for LimitAcceptor {
    type Stream = Guarded<TcpStream>;
    type Service = Tracked<S>;
    type Future = Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let _ = stream.set_nodelay(true);
        std::future::ready(match self.listener.admit() {
            Some(conn) => Ok((
                Guarded::new(stream, conn.clone()),
                Tracked {
                    inner: service,
                    conn,
                },
            )),
            None => Err(io::Error::other(
                "token listener full of connections serving requests",
            )),
        })
    }
}

/// A connection's I/O that ends it (an error from the next read or a pending write) when its
/// deadline passes or it is evicted.
pub struct Guarded<T> {
    inner: T,
    conn: Arc<Conn>,
    sleep: Pin<Box<Sleep>>,
}

impl<T> Guarded<T> {
    fn new(inner: T, conn: Arc<Conn>) -> Self {
        let first = conn
            .phase()
            .deadline(&conn.listener.limits)
            .unwrap_or_else(std::time::Instant::now);
        Self {
            inner,
            conn,
            sleep: Box::pin(tokio::time::sleep_until(first.into())),
        }
    }

    /// Called whenever the inner I/O is pending: arms the timer for the current deadline and
    /// tells whether the connection must end now.
    fn watch(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        self.conn.waker.register(cx.waker());
        if self.conn.evicted() {
            return Poll::Ready(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "evicted to admit a new connection",
            ));
        }
        let limits = self.conn.listener.limits;
        loop {
            let phase = self.conn.phase();
            let deadline = phase.deadline(&limits);
            // The timer is only moved earlier here; when it fires late for a deadline that moved
            // on, it is re-armed below. So a request costs no timer update unless it starts a head.
            if let Some(d) = deadline
                && d < self.sleep.deadline().into_std()
            {
                self.sleep.as_mut().reset(d.into());
            }
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = std::time::Instant::now();
            match deadline {
                Some(d) if d <= now => {
                    self.conn.listener.metrics.closed(phase.timeout_reason());
                    return Poll::Ready(io::Error::new(
                        io::ErrorKind::TimedOut,
                        phase.timeout_reason(),
                    ));
                }
                Some(d) => self.sleep.as_mut().reset(d.into()),
                None => {
                    let check = limits.header_read_timeout.min(limits.idle_timeout);
                    self.sleep.as_mut().reset((now + check).into());
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.conn.evicted() {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.conn.received();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.watch(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.watch(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.watch(cx).map(Err),
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.watch(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.watch(cx).map(Err),
            ready => ready,
        }
    }
}

/// The connection's service: counts the requests in flight (a request is in flight from the
/// call until its response future completes or is dropped).
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

pin_project_lite::pin_project! {
    /// A response future that keeps its request counted as in flight until it completes or is
    /// dropped.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F: Future> Future for TrackedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        // Idle from the moment the response is ready: the writing that follows is bounded by
        // the idle timeout (a client that does not read its responses).
        this.in_flight.take();
        Poll::Ready(output)
    }
}

impl<S, R> tower::Service<R> for Tracked<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.conn.request_started();
        TrackedFuture {
            inner: self.inner.call(request),
            in_flight: Some(InFlight(self.conn.clone())),
        }
    }
}

impl<T> std::fmt::Debug for Guarded<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("phase", &self.conn.phase())
            .finish_non_exhaustive()
    }
}

/// The phase of a tracked connection (for tests).
impl<T> Guarded<T> {
    pub fn phase(&self) -> Phase {
        self.conn.phase()
    }
}
