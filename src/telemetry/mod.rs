//! Logging setup: `tracing` with `RUST_LOG` filtering, JSON or text lines.
//!
//! Lines go to stdout through a dedicated writer thread ([`batch`]), so a slow log pipe never
//! blocks a runtime worker in the middle of a token request, and a busy endpoint's audit lines
//! cost one write per batch, not one thread wake-up per line. A line is written within 10 ms.
//! The writer is not lossy: when 8 MiB are waiting, logging waits rather than dropping audit
//! lines.

pub mod batch;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

pub use self::batch::Guard;
use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides the default `info` level. Keep the guard
/// until the process exits: dropping it flushes the lines still buffered.
#[must_use = "dropping the guard stops the log writer"]
pub fn init(format: LogFormat) -> Guard {
    init_to(format, std::io::stdout())
}

/// [`init`] with the lines going to `out` instead of stdout (the benchmarks' in-process
/// servers log exactly as the operator does, to a file they do not print).
#[must_use = "dropping the guard stops the log writer"]
pub fn init_to(format: LogFormat, out: impl std::io::Write + Send + 'static) -> Guard {
    let (writer, guard) = batch::batched(out, batch::Limits::default());
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
