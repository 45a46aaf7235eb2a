//! The benchmark's own control plane and operator processes. `hack/bench.sh` starts a plane on
//! dedicated ports and state (never the test plane) and exports its `KUBECONFIG` and
//! `M2M_CLUSTER_DIR`; this module installs what the operator needs (CRDs, namespace, the
//! chart's RBAC, as the cluster tests do), runs the release `m2m-operator` binary as a real
//! process impersonating its ServiceAccount, and reads the processes' CPU time and memory.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{http, procfs, promtext};
use kube::Client;
use m2m_operator::testing::install;

/// Field manager of everything the benchmarks write.
pub const MANAGER: &str = "m2m-bench";
/// The operator's namespace, as `deploy/m2m-operator.yaml` installs it.
pub const OPERATOR_NAMESPACE: &str = "m2m-system";
/// The chart's ServiceAccount and the groups the API server gives its token.
const OPERATOR_USER: &str = "system:serviceaccount:m2m-system:m2m-operator";
const OPERATOR_GROUPS: &str =
    "system:serviceaccounts,system:serviceaccounts:m2m-system,system:authenticated";
pub const ISSUER: &str = "https://m2m.bench.example";

/// A client for the bench plane; panics with the way to get one.
pub async fn client() -> Client {
    let kubeconfig = std::env::var("KUBECONFIG").unwrap_or_default();
    assert!(
        !kubeconfig.is_empty(),
        "KUBECONFIG is not set: run cluster benchmarks through hack/bench.sh, which starts their own control plane"
    );
    let client = Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("no client from KUBECONFIG={kubeconfig}: {e}"));
    client.apiserver_version().await.unwrap_or_else(|e| {
        panic!("the API server of KUBECONFIG={kubeconfig} does not answer: {e}")
    });
    client
}

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

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// The `m2m-operator` binary: `M2M_OPERATOR_BIN`, or the one next to this benchmark binary
/// (hack/bench.sh builds both into the same target folder).
fn operator_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("M2M_OPERATOR_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("own path");
    exe.with_file_name("m2m-operator")
}

/// A running operator process; stopped (SIGTERM) when dropped.
pub struct Operator {
    child: Option<Child>,
    pub admin: SocketAddr,
    pub token: SocketAddr,
    pub log: PathBuf,
    pub started: Instant,
}

impl Operator {
    /// Starts the release binary with the chart's identity, loopback listeners on free ports,
    /// a Lease of its own, and `extra_env` (M2M_* settings).
    pub fn spawn(name: &str, extra_env: &[(&str, &str)]) -> Self {
        let admin = free_addr();
        let token = free_addr();
        let dir = std::env::temp_dir().join(format!("m2m-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let bin = operator_binary();
        let mut cmd = Command::new(&bin);
        cmd.arg("run")
            .env("M2M_ADMIN_ADDR", admin.to_string())
            .env("M2M_TOKEN_ADDR", token.to_string())
            .env("M2M_ISSUER", ISSUER)
            .env("M2M_NAMESPACE", OPERATOR_NAMESPACE)
            .env(
                "M2M_LEASE_NAME",
                format!("m2m-bench-{name}-{}", std::process::id()),
            )
            .env("M2M_POD_NAME", name)
            .env("M2M_LOG_FORMAT", "json")
            .env("M2M_SHUTDOWN_DELAY", "0s")
            .env("KUBE_RS_DEBUG_IMPERSONATE_USER", OPERATOR_USER)
            .env("KUBE_RS_DEBUG_IMPERSONATE_GROUP", OPERATOR_GROUPS)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file));
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "starting {} (build it with hack/bench.sh): {e}",
                bin.display()
            )
        });
        Self {
            child: Some(child),
            admin,
            token,
            log,
            started,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("a running operator")
    }

    /// Waits until `/readyz` answers 200 (polling every 10 ms); returns the time since spawn.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Duration {
        let deadline = Instant::now() + timeout;
        loop {
            let admin = self.admin;
            let status = tokio::task::spawn_blocking(move || http::get(admin, "/readyz"))
                .await
                .unwrap();
            if matches!(status, Ok((200, _))) {
                return self.started.elapsed();
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "m2m-operator exited with {status}; see {}",
                    self.log.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "m2m-operator not ready in {timeout:?}; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The operator's `/metrics`, parsed.
    pub async fn metrics(&self) -> Vec<promtext::Sample> {
        let admin = self.admin;
        let (status, body) = tokio::task::spawn_blocking(move || http::get(admin, "/metrics"))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("reading the operator's /metrics: {e}"));
        assert_eq!(status, 200, "operator /metrics");
        promtext::parse(&body)
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
                return last.1.duration_since(self.started);
            }
            assert!(
                Instant::now() < deadline,
                "the operator did not settle within {timeout:?}; see {}",
                self.log.display()
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

    /// SIGTERM, then waits up to 30 s for the exit (SIGKILL after).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop();
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
