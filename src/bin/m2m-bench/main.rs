//! Benchmarks (not tests): each scenario prints a table and writes it into docs/benchmarks.md.
//! Run them through `hack/bench.sh SCENARIO`.

// A benchmark aborts on any setup failure; there is nothing to recover.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod load;
mod report;
mod token;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The operator binary's allocator (src/main.rs), so the figures are the shipped binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "m2m-bench", about = "m2m-operator benchmarks")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Token endpoint throughput and latency.
    Token {
        /// Apps in the index.
        #[arg(long, default_value_t = 100)]
        apps: u64,
        /// Seconds per load run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent connections of the load generator.
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
}

fn main() {
    match Cli::parse().scenario {
        Scenario::Token {
            apps,
            seconds,
            connections,
            write,
            oha,
            wrk,
        } => token::run(apps, seconds, connections, &write, &oha, &wrk),
    }
}
