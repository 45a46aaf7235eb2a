//! Command line and environment configuration (`clap`, every flag with an env fallback).

use std::{net::SocketAddr, time::Duration};

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

    /// Namespace the operator runs in: client records, signing keys and the Lease live here.
    #[arg(long, env = "M2M_NAMESPACE", default_value = "m2m-system")]
    pub namespace: String,

    /// Issuer URL: the `iss` claim and the base of the discovery documents.
    #[arg(long, env = "M2M_ISSUER")]
    pub issuer: String,

    /// Public URL of the token endpoint written into every Secret. Default: `<issuer>/oauth2/token`.
    #[arg(long, env = "M2M_TOKEN_URL")]
    pub token_url: Option<String>,

    /// Run the controllers only while holding the Lease (needed with more than one replica).
    #[arg(long, env = "M2M_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the Lease used for leader election.
    #[arg(long, env = "M2M_LEASE_NAME", default_value = "m2m-operator")]
    pub lease_name: String,

    /// How long the Lease lasts without renewal: a dead leader is replaced within this.
    #[arg(long, env = "M2M_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    pub lease_duration: Duration,

    /// How long before the Lease expires the leader renews it.
    #[arg(long, env = "M2M_LEASE_RENEW_BEFORE", default_value = "5s", value_parser = duration)]
    pub lease_renew_before: Duration,

    /// This replica's identity in the Lease and in Events. Default: the host name and PID.
    #[arg(long, env = "M2M_POD_NAME")]
    pub identity: Option<String>,

    /// How often an unchanged object is reconciled anyway.
    #[arg(long, env = "M2M_RESYNC", default_value = "1h", value_parser = duration)]
    pub resync: Duration,
}

impl RunConfig {
    /// The token URL written into Secrets.
    pub fn token_url(&self) -> String {
        self.token_url
            .clone()
            .unwrap_or_else(|| format!("{}/oauth2/token", self.issuer.trim_end_matches('/')))
    }

    /// The identity of this replica.
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "m2m-operator".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }
}

fn duration(value: &str) -> Result<Duration, String> {
    crate::api::duration::parse(value).map_err(|e| e.to_string())
}
