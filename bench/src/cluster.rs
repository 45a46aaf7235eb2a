//! The benchmark's own control plane and operator processes. `hack/bench.sh` starts a plane on
//! dedicated ports and state (never the test plane) and exports its `KUBECONFIG` and
//! `M2M_CLUSTER_DIR`; this module installs what the operator needs (CRDs, namespace, the
//! chart's RBAC, as the cluster tests do), runs the release `m2m-operator` binary as a real
//! process impersonating its ServiceAccount, and reads the processes' CPU time and memory.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use kube::Client;
use m2m_operator_testkit::{cluster::operator as kit, install};

use crate::{procfs, promtext};

/// Field manager of everything the benchmarks write.
pub const MANAGER: &str = "m2m-bench";
pub use m2m_operator_testkit::cluster::operator::OPERATOR_NAMESPACE;
pub const ISSUER: &str = "https://m2m.bench.example";

pub use m2m_operator_testkit::cluster::common::client;

/// CRDs, the operator namespace and the chart's ServiceAccount and RBAC.
pub async fn prepare(client: &Client) {
    install::crds(client, MANAGER).await;
    install::namespace(client, OPERATOR_NAMESPACE).await;
    install::operator_rbac(client, MANAGER).await;
}

/// The API server's `/metrics`, parsed.
pub async fn apiserver_metrics(client: &Client) -> Vec<promtext::Sample> {
    let request = http_request_get("/metrics");
    let text = client
        .request_text(request)
        .await
        .unwrap_or_else(|e| panic!("reading the API server's /metrics: {e}"));
    promtext::parse(&text)
}

fn http_request_get(path: &str) -> axum::http::Request<Vec<u8>> {
    axum::http::Request::get(path)
        .body(Vec::new())
        .expect("a GET request")
}

/// The control plane's processes (from the pid files `hack/cluster.sh up` wrote into
/// `M2M_CLUSTER_DIR`), by name.
pub fn plane_pids() -> Vec<(&'static str, u32)> {
    let Some(dir) = std::env::var_os("M2M_CLUSTER_DIR").map(PathBuf::from) else {
        return Vec::new();
    };
    ["kube-apiserver", "etcd", "kube-controller-manager"]
        .into_iter()
        .filter_map(|name| {
            let pid = std::fs::read_to_string(dir.join(format!("{name}.pid"))).ok()?;
            Some((name, pid.trim().parse().ok()?))
        })
        .collect()
}

/// A running operator process (the test kit's, with the bench's issuer, a Lease of its own and
/// its log in a folder of this run), measured through `/proc`; stopped (SIGTERM) when dropped.
pub struct Operator {
    inner: kit::Operator,
    pub token: SocketAddr,
}

impl Operator {
    /// Starts the release binary with the chart's identity, loopback listeners on free ports,
    /// a Lease of its own, and `extra_env` (M2M_* settings).
    pub fn spawn(name: &str, extra_env: &[(&str, &str)]) -> Self {
        let inner = kit::Operator::spawn(kit::Options {
            lease_name: format!("m2m-bench-{name}-{}", std::process::id()),
            identity: name.to_owned(),
            issuer: ISSUER.to_owned(),
            global_apps_in_test_namespaces: false,
            log_dir: Some(std::env::temp_dir().join(format!("m2m-bench-{}", std::process::id()))),
            extra_env: extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..kit::Options::default()
        });
        Self {
            token: inner.token_addr(),
            inner,
        }
    }

    pub fn pid(&self) -> u32 {
        self.inner.pid()
    }

    /// Waits until `/readyz` answers 200; returns the time since spawn.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Duration {
        self.inner.wait_ready_within(timeout).await
    }

    /// The operator's `/metrics`, parsed.
    pub async fn metrics(&self) -> Vec<promtext::Sample> {
        promtext::parse(&self.inner.metrics().await)
    }

    /// Waits until the operator has been quiet (no reconcile started or finished) for
    /// `quiet`, and `done` holds for its metrics; returns the time since spawn.
    pub async fn settle(
        &self,
        quiet: Duration,
        timeout: Duration,
        done: impl Fn(&[promtext::Sample]) -> bool,
    ) -> Duration {
        let deadline = Instant::now() + timeout;
        let mut last = (f64::NAN, Instant::now());
        loop {
            let metrics = self.metrics().await;
            let reconciles = promtext::sum(&metrics, "m2m_reconciles_total", &[]);
            if reconciles != last.0 {
                last = (reconciles, Instant::now());
            } else if last.1.elapsed() >= quiet && done(&metrics) {
                return last.1.duration_since(self.inner.started);
            }
            assert!(
                Instant::now() < deadline,
                "the operator did not settle within {timeout:?}; see {}",
                self.inner.log.display()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Median of `n` RSS readings one second apart, in MiB.
    pub async fn steady_rss_mib(&self, n: usize) -> f64 {
        let mut readings = Vec::new();
        for _ in 0..n {
            readings.push(self.rss_mib());
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        readings.sort_by(f64::total_cmp);
        readings[readings.len() / 2]
    }

    pub fn rss_mib(&self) -> f64 {
        procfs::rss_mib(self.pid()).unwrap_or(f64::NAN)
    }

    pub fn peak_rss_mib(&self) -> f64 {
        procfs::peak_rss_mib(self.pid()).unwrap_or(f64::NAN)
    }

    pub fn cpu_seconds(&self) -> f64 {
        procfs::cpu_seconds(self.pid()).unwrap_or(f64::NAN)
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 20 s).
    pub fn stop(&mut self) {
        self.inner.terminate();
    }
}

/// CPU seconds used so far by each process of the run: the operator, the plane's processes
/// and this benchmark.
pub fn cpu_by_process(operator: Option<&Operator>) -> Vec<(&'static str, f64)> {
    let mut out = Vec::new();
    if let Some(op) = operator {
        out.push(("m2m-operator", op.cpu_seconds()));
    }
    for (name, pid) in plane_pids() {
        out.push((name, procfs::cpu_seconds(pid).unwrap_or(f64::NAN)));
    }
    out.push((
        "m2m-bench (the client)",
        procfs::cpu_seconds(std::process::id()).unwrap_or(f64::NAN),
    ));
    out
}
