//! Command line and environment configuration (`clap`, every flag with an env fallback).

use std::net::SocketAddr;

use clap::{Parser, Subcommand, ValueEnum};

/// Kubernetes operator for tenant-scoped OAuth 2.0 machine-to-machine credentials.
#[derive(Debug, Parser)]
#[command(name = "m2m-operator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controllers, the token endpoint and the admin server until SIGTERM.
    Run(RunConfig),
    /// Print both CustomResourceDefinitions as multi-document YAML (or write them to a folder).
    Crd {
        /// Write one file per CRD into this folder instead of printing.
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log pipelines).
    Json,
    /// Human-readable lines.
    Text,
}

/// Configuration of `m2m-operator run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunConfig {
    /// Address of the admin listener: /healthz, /readyz, /metrics.
    #[arg(long, env = "M2M_ADMIN_ADDR", default_value = "0.0.0.0:8081")]
    pub admin_addr: SocketAddr,

    /// Log format.
    #[arg(long, env = "M2M_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
}
