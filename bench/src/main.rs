//! Benchmarks (not tests): each scenario prints a table and writes it into docs/benchmarks.md.
//! Run them through `hack/bench.sh SCENARIO`.

// A benchmark aborts on any setup failure; there is nothing to recover.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod breakdown;
mod cluster;
mod coldstart;
use m2m_operator_testkit::cluster::tenants as fixtures;
mod flood;
mod index;
mod keyless;
use m2m_operator_testkit::raw_http as http;
mod load;
mod memory;
mod peer;
mod procfs;
mod promtext;
mod propagation;
mod reconcile;
mod report;
mod stats;
mod token;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The operator binary's allocator (src/main.rs), so the figures are the shipped binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "m2m-bench", about = "m2m-operator benchmarks")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// ServiceAccount-token client authentication next to a shared secret (needs a control
    /// plane: hack/cluster.sh).
    Keyless {
        /// Rounds of (secret peak, ServiceAccount-token peak); the table shows their medians.
        #[arg(long, default_value_t = 3)]
        rounds: u64,
        /// Seconds per load run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent connections of the load generator.
        #[arg(long, default_value_t = 16)]
        connections: u64,
        /// Markdown file to write the table into (between this scenario's markers).
        #[arg(long, default_value = "docs/benchmarks.md")]
        write: PathBuf,
        /// The wrk binary.
        #[arg(long, env = "M2M_WRK", default_value = "wrk")]
        wrk: String,
    },
    /// Token endpoint throughput and latency.
    Token {
        /// Apps in the index.
        #[arg(long, default_value_t = 100)]
        apps: u64,
        /// Rounds of (peak, half of peak, raw signing); the table shows their medians.
        #[arg(long, default_value_t = 3)]
        rounds: u64,
        /// Seconds per load run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent connections of the load generator (docs/benchmarks.md has the figures
        /// from 16 to 256 on this machine).
        #[arg(long, default_value_t = 16)]
        connections: u64,
        /// Markdown file to write the table into (between this scenario's markers).
        #[arg(long, default_value = "docs/benchmarks.md")]
        write: PathBuf,
        /// The oha binary (rate-limited runs: latency at half of peak).
        #[arg(long, env = "M2M_OHA", default_value = "oha")]
        oha: String,
        /// The wrk binary (peak throughput runs; lighter than oha, so the server keeps more of
        /// the shared cores). Empty: use oha for everything.
        #[arg(long, env = "M2M_WRK", default_value = "wrk")]
        wrk: String,
    },
    /// Reconcile throughput against the bench control plane (hack/bench.sh starts it): N apps
    /// created at once until all Ready, next to a plain client doing the same writes.
    Reconcile {
        #[arg(long, default_value_t = 1000)]
        apps: usize,
        #[arg(long, default_value_t = 100)]
        orgs: usize,
        /// Create requests in flight (both runs).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value = "docs/benchmarks.md")]
        write: PathBuf,
    },
    /// Legitimate token load alone and with a concurrent flood of wrong secrets against the
    /// same client_id.
    Flood {
        #[arg(long, default_value_t = 10_000)]
        apps: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 16)]
        connections: u64,
        /// Wrong-secret requests per second of the rate-limited flood.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        #[arg(long, default_value = "docs/benchmarks.md")]
        write: PathBuf,
        #[arg(long, env = "M2M_OHA", default_value = "oha")]
        oha: String,
        #[arg(long, env = "M2M_WRK", default_value = "wrk")]
        wrk: String,
    },
    /// Operator RSS with 0 apps, then each size (cumulative), then a restarted process.
    Memory {
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        sizes: Vec<usize>,
        #[arg(long, default_value_t = 10)]
        apps_per_org: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value = "docs/benchmarks.md")]
        write: PathBuf,
        /// Also read 6 minutes after the largest size, once kube's event cache has expired.
        #[arg(long)]
        after_event_cache: bool,
    },
    /// Time from an API write (rotation, suspension, deletion) to the token endpoint acting.
    Propagation {
        #[arg(long, default_value_t = 100)]
        trials: usize,
        #[arg(long, default_value = "docs/benchmarks.md")]
        write: PathBuf,
    },
    /// The in-memory parts at scale without an API server: bytes per app per structure, lookups.
    Index {
        #[arg(long, default_value_t = 100_000)]
        apps: usize,
        #[arg(long, default_value_t = 10)]
        apps_per_org: usize,
        #[arg(long, default_value = "docs/benchmarks.md")]
        write: PathBuf,
    },
    /// Ory Hydra v2.3.0 beside our token endpoint and a sign-only route, rounds alternated
    /// (hack/bench.sh peer builds Hydra and passes --hydra).
    Peer {
        #[arg(long)]
        hydra: PathBuf,
        #[arg(long, default_value_t = 3)]
        rounds: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 16)]
        connections: u64,
        #[arg(long, default_value = "docs/benchmarks.md")]
        write: PathBuf,
        #[arg(long, env = "M2M_OHA", default_value = "oha")]
        oha: String,
        #[arg(long, env = "M2M_WRK", default_value = "wrk")]
        wrk: String,
    },
    /// A fresh operator process over existing apps: /readyz, re-checks, first vs later requests.
    Coldstart {
        #[arg(long, default_value_t = 10_000)]
        apps: usize,
        #[arg(long, default_value_t = 10)]
        apps_per_org: usize,
        /// Clients measured right after /readyz, and as many once the controller is quiet.
        #[arg(long, default_value_t = 20)]
        clients: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value = "docs/benchmarks.md")]
        write: PathBuf,
    },
}

/// The async runtime of the cluster scenarios.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// The in-process servers (token, flood) log like the operator: the JSON format, every token
/// request's audit line, through the same writer thread; to /dev/null instead of stdout, which
/// carries the tables. The cluster scenarios run the operator binary, which logs on its own.
fn log_like_the_operator() -> m2m_operator::telemetry::Guard {
    let sink = std::fs::File::create("/dev/null").expect("open /dev/null");
    m2m_operator::telemetry::init_to(m2m_operator::config::LogFormat::Json, sink)
}

/// Long on purpose: one measured sequence whose steps share the timed window and the processes under test.
fn main() {
    let cli = Cli::parse();
    let _log = matches!(
        cli.scenario,
        Scenario::Token { .. }
            | Scenario::Flood { .. }
            | Scenario::Peer { .. }
            | Scenario::Keyless { .. }
    )
    .then(log_like_the_operator);
    match cli.scenario {
        Scenario::Keyless {
            rounds,
            seconds,
            connections,
            write,
            wrk,
        } => keyless::run(rounds, seconds, connections, &write, &wrk),
        Scenario::Token {
            apps,
            rounds,
            seconds,
            connections,
            write,
            oha,
            wrk,
        } => token::run(apps, rounds, seconds, connections, &write, &oha, &wrk),
        Scenario::Reconcile {
            apps,
            orgs,
            concurrency,
            write,
        } => block_on(reconcile::run(reconcile::Options {
            apps,
            orgs,
            concurrency,
            write,
        })),
        Scenario::Flood {
            apps,
            seconds,
            connections,
            rate,
            write,
            oha,
            wrk,
        } => flood::run(flood::Options {
            apps,
            seconds,
            connections,
            rate,
            write,
            oha,
            wrk,
        }),
        Scenario::Memory {
            sizes,
            apps_per_org,
            concurrency,
            write,
            after_event_cache,
        } => block_on(memory::run(memory::Options {
            sizes,
            apps_per_org,
            concurrency,
            write,
            after_event_cache,
        })),
        Scenario::Peer {
            hydra,
            rounds,
            seconds,
            connections,
            write,
            oha,
            wrk,
        } => peer::run(peer::Options {
            hydra,
            rounds,
            seconds,
            connections,
            write,
            oha,
            wrk,
        }),
        Scenario::Index {
            apps,
            apps_per_org,
            write,
        } => index::run(index::Options {
            apps,
            apps_per_org,
            write,
        }),
        Scenario::Propagation { trials, write } => {
            block_on(propagation::run(propagation::Options { trials, write }))
        }
        Scenario::Coldstart {
            apps,
            apps_per_org,
            clients,
            concurrency,
            write,
        } => block_on(coldstart::run(coldstart::Options {
            apps,
            apps_per_org,
            clients,
            concurrency,
            write,
        })),
    }
}
