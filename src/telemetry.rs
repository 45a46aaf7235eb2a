//! Logging setup: `tracing` with `RUST_LOG` filtering, JSON or text lines.
//!
//! Lines go to stdout through a dedicated writer thread, so a slow log pipe never blocks a
//! runtime worker in the middle of a token request. The writer is not lossy: when its buffer
//! (128k lines) is full, logging waits rather than dropping audit lines.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides the default `info` level. Keep the guard
/// until the process exits: dropping it flushes the lines still buffered.
#[must_use = "dropping the guard stops the log writer"]
pub fn init(format: LogFormat) -> WorkerGuard {
    init_to(format, std::io::stdout())
}

/// [`init`] with the lines going to `out` instead of stdout (the benchmarks' in-process
/// servers log exactly as the operator does, to a file they do not print).
#[must_use = "dropping the guard stops the log writer"]
pub fn init_to(format: LogFormat, out: impl std::io::Write + Send + 'static) -> WorkerGuard {
    // Buffered: the writer flushes whenever its queue is empty, so a burst of audit lines is
    // one write, and nothing waits in the buffer once the burst is over.
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("m2m-log-writer")
        .finish(std::io::BufWriter::with_capacity(64 * 1024, out));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(writer),
            )
            .init(),
        LogFormat::Text => registry
            .with(fmt::layer().with_target(false).with_writer(writer))
            .init(),
    }
    guard
}
