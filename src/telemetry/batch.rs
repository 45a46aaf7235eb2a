//! A log writer that batches: a thread that logs appends its line to a shared buffer (no
//! system call, no thread wake-up), and one writer thread writes what has gathered every
//! [`Limits::every`], or as soon as [`Limits::batch`] bytes are waiting. A channel with one
//! message per line (tracing-appender's non-blocking writer) wakes the writer thread for
//! nearly every line: at 20,000 audit lines per second that wake-up cost a token request more
//! than the rest of its handler (benchmarks.md).
//!
//! Lossless: past [`Limits::max_pending`] bytes a logging thread waits for the writer rather
//! than dropping a line (audit lines must not be lost).

use std::{
    io::Write,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread::JoinHandle,
    time::Duration,
};

/// When the writer thread writes.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest a line waits before it is written.
    pub every: Duration,
    /// Bytes that make the writer write at once.
    pub batch: usize,
    /// Bytes waiting beyond which logging threads wait for the writer.
    pub max_pending: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            every: Duration::from_millis(10),
            batch: 64 * 1024,
            max_pending: 8 * 1024 * 1024,
        }
    }
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer: a full batch, or closing.
    ready: Condvar,
    /// Wakes logging threads waiting for room.
    room: Condvar,
    limits: Limits,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A thread that panicked while appending left whole lines behind: keep logging.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `MakeWriter` of the subscriber: each event's line is one append.
#[derive(Clone)]
pub struct BatchWriter(Arc<Shared>);

/// Writes what is still waiting and stops the writer thread when dropped.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A writer over `out` and the guard that flushes it at the end.
pub fn batched(out: impl Write + Send + 'static, limits: Limits) -> (BatchWriter, Guard) {
    let shared = Arc::new(Shared {
        pending: Mutex::default(),
        ready: Condvar::new(),
        room: Condvar::new(),
        limits,
    });
    let thread = std::thread::Builder::new()
        .name("m2m-log-writer".into())
        .spawn({
            let shared = shared.clone();
            move || write_batches(&shared, out)
        })
        .ok();
    (BatchWriter(shared.clone()), Guard { shared, thread })
}

fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        let closed = {
            let mut pending = shared.lock();
            if !pending.closed && pending.bytes.len() < shared.limits.batch {
                pending = shared
                    .ready
                    .wait_timeout(pending, shared.limits.every)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            // Swap buffers: the logging threads get the (emptied) one written last time.
            std::mem::swap(&mut batch, &mut pending.bytes);
            shared.room.notify_all();
            pending.closed
        };
        if !batch.is_empty() {
            // Nowhere to report a failed log write; the next batch tries again.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
        }
        if closed && shared.lock().bytes.is_empty() {
            return;
        }
    }
}

impl Write for &BatchWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shared = &self.0;
        let mut pending = shared.lock();
        while pending.bytes.len() >= shared.limits.max_pending && !pending.closed {
            shared.ready.notify_one();
            pending = shared.room.wait(pending).unwrap_or_else(|e| e.into_inner());
        }
        pending.bytes.extend_from_slice(buf);
        if pending.bytes.len() >= shared.limits.batch {
            shared.ready.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = &'a BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Instant;

    use super::*;

    /// An `out` whose writes the test can see.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Seen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut seen = self.0.lock().unwrap();
            seen.0.extend_from_slice(buf);
            seen.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seen {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().0.clone()).unwrap()
        }
        fn writes(&self) -> usize {
            self.0.lock().unwrap().1
        }
    }

    fn line(writer: &BatchWriter, text: &str) {
        let mut w = writer;
        w.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_in_few_writes_and_all_by_the_end() {
        let seen = Seen::default();
        let (writer, guard) = batched(seen.clone(), Limits::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        line(&writer, &format!("thread {t} line {i}\n"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = seen.text();
        assert_eq!(text.lines().count(), 20_000);
        for t in 0..4 {
            let mine: Vec<_> = text
                .lines()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<_> = (0..5000).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(mine, expected, "each thread's lines whole and in order");
        }
        assert!(
            seen.writes() < 1000,
            "{} writes for 20,000 lines",
            seen.writes()
        );
    }

    #[test]
    fn a_lone_line_is_written_within_the_interval_without_a_flush() {
        let seen = Seen::default();
        let limits = Limits {
            every: Duration::from_millis(20),
            ..Limits::default()
        };
        let (writer, _guard) = batched(seen.clone(), limits);
        line(&writer, "alone\n");
        let start = Instant::now();
        while seen.text().is_empty() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(seen.text(), "alone\n");
    }

    #[test]
    fn a_slow_output_makes_loggers_wait_instead_of_losing_lines() {
        /// An output that takes 5 ms per write.
        struct Slow(Seen);
        impl Write for Slow {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(5));
                self.0.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let seen = Seen::default();
        let limits = Limits {
            every: Duration::from_millis(1),
            batch: 64,
            max_pending: 256,
        };
        let (writer, guard) = batched(Slow(seen.clone()), limits);
        for i in 0..2000 {
            line(&writer, &format!("line {i:04}\n"));
        }
        drop(guard);
        let expected: String = (0..2000).map(|i| format!("line {i:04}\n")).collect();
        assert_eq!(seen.text(), expected);
    }
}
