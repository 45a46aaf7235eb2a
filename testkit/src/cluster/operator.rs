//! Runs the real `m2m-operator` binary against the test control plane.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use kube::Client;

/// Namespace the operator runs in during tests (client records, Lease): the namespace
/// `deploy/m2m-operator.yaml` installs into.
pub const OPERATOR_NAMESPACE: &str = "m2m-system";
/// The identity every operator process runs as: the chart's ServiceAccount, impersonated from
/// the admin kubeconfig, with exactly the RBAC that `deploy/m2m-operator.yaml` grants it.
pub const OPERATOR_USER: &str = "system:serviceaccount:m2m-system:m2m-operator";
/// The groups the API server gives a ServiceAccount's token.
pub const OPERATOR_GROUPS: &str =
    "system:serviceaccounts,system:serviceaccounts:m2m-system,system:authenticated";
pub const ISSUER: &str = "http://127.0.0.1:18080";

/// Options of one operator process.
#[derive(Clone, Debug)]
pub struct Options {
    /// Lease name; tests that do not test leader election get a unique one, so a killed
    /// operator of an earlier test never delays them.
    pub lease_name: String,
    pub identity: String,
    pub lease_duration: &'static str,
    /// Allow global apps in the test namespaces (labelled `m2m.dev/test=true`), so tests of
    /// other things can use them; the operator's own default (its namespace only) is tested
    /// with this off.
    pub global_apps_in_test_namespaces: bool,
    /// `M2M_ISSUER`.
    pub issuer: String,
    /// Where the process's log goes (default: the leak scan's folder, or a temporary one).
    pub log_dir: Option<PathBuf>,
    pub extra_env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        let sfx = crate::cluster::common::suffix();
        Self {
            lease_name: format!("m2m-test-{sfx}"),
            identity: format!("test-{sfx}"),
            lease_duration: "15s",
            global_apps_in_test_namespaces: true,
            issuer: ISSUER.to_owned(),
            log_dir: None,
            extra_env: Vec::new(),
        }
    }
}

/// A running operator process, killed when dropped.
pub struct Operator {
    child: Option<Child>,
    pub admin_port: u16,
    pub token_port: u16,
    pub options: Options,
    pub log: PathBuf,
    /// When the process was started.
    pub started: Instant,
}

/// The `m2m-operator` binary: `M2M_OPERATOR_BIN`, else the one cargo built beside the running
/// test or benchmark (`target/<profile>/m2m-operator`; integration tests run from
/// `target/<profile>/deps/`, and cargo builds a package's binaries before its integration tests).
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("M2M_OPERATOR_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe.parent().expect("a folder");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("target/<profile>")
    } else {
        dir
    };
    dir.join("m2m-operator")
}

pub async fn ensure_operator_namespace(client: &Client) {
    crate::install::namespace(client, OPERATOR_NAMESPACE).await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Operator {
    /// Starts an operator with default options and waits until it is ready.
    pub async fn start(client: &Client) -> Self {
        Self::start_with(client, Options::default()).await
    }

    pub async fn start_with(client: &Client, options: Options) -> Self {
        crate::cluster::common::install_crds(client).await;
        ensure_operator_namespace(client).await;
        crate::cluster::common::install_operator_rbac(client).await;
        let mut op = Self::spawn(options);
        op.wait_ready().await;
        op
    }

    /// Starts the process without waiting.
    pub fn spawn(options: Options) -> Self {
        let admin_port = free_port();
        let token_port = free_port();
        let dir = options.log_dir.clone().unwrap_or_else(|| {
            crate::cluster::common::leak_dir()
                .map(|d| d.join("logs"))
                .unwrap_or_else(|| std::env::temp_dir().join("m2m-operator-test-logs"))
        });
        std::fs::create_dir_all(&dir).expect("log dir");
        let log = dir.join(format!("{}-{}.log", options.identity, admin_port));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(binary());
        cmd.arg("run")
            .env("M2M_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("M2M_TOKEN_ADDR", format!("127.0.0.1:{token_port}"))
            .env("M2M_ISSUER", &options.issuer)
            .env("M2M_NAMESPACE", OPERATOR_NAMESPACE)
            .env("M2M_LEASE_NAME", &options.lease_name)
            .env("M2M_POD_NAME", &options.identity)
            .env("M2M_LEASE_DURATION", options.lease_duration)
            .env("M2M_LEASE_RENEW_BEFORE", "2s")
            .env("M2M_LOG_FORMAT", "json")
            // Teardown is a SIGTERM; tests that check the drain set their own delay.
            .env("M2M_SHUTDOWN_DELAY", "0s")
            // kube-rs applies these to every request: the process has the chart's permissions.
            .env("KUBE_RS_DEBUG_IMPERSONATE_USER", OPERATOR_USER)
            .env("KUBE_RS_DEBUG_IMPERSONATE_GROUP", OPERATOR_GROUPS)
            .env(
                "RUST_LOG",
                std::env::var("M2M_TEST_LOG").unwrap_or_else(|_| "info,kube=warn".into()),
            )
            .stdout(Stdio::from(file.try_clone().expect("log file")))
            .stderr(Stdio::from(file));
        if options.global_apps_in_test_namespaces {
            cmd.env("M2M_GLOBAL_APP_NAMESPACE_LABELS", "m2m.dev/test=true");
        }
        for (k, v) in &options.extra_env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary().display()));
        Self {
            child: Some(child),
            admin_port,
            token_port,
            options,
            log,
            started,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("a running operator")
    }

    /// The status of `/readyz` (None when nothing answers).
    pub async fn readyz(&self) -> Option<u16> {
        self.admin_status("/readyz").await
    }

    /// Sends SIGTERM without waiting.
    pub fn send_term(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
    }

    /// Waits up to `timeout` for the process to exit; returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.child.as_mut().map(Child::try_wait);
            match status {
                Some(Ok(Some(status))) => {
                    self.child = None;
                    return Some(status);
                }
                Some(Ok(None)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => return None,
            }
        }
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.admin_port))
    }

    /// The token listener's address.
    pub fn token_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.token_port))
    }

    /// The status and body of an admin path (None when nothing answers).
    async fn admin_get(&self, path: &'static str) -> Option<(u16, String)> {
        let addr = self.admin_addr();
        tokio::task::spawn_blocking(move || crate::raw_http::get(addr, path).ok())
            .await
            .ok()
            .flatten()
    }

    /// The status and body of `/healthz` (None when nothing answers).
    pub async fn healthz(&self) -> Option<(u16, String)> {
        self.admin_get("/healthz").await
    }

    async fn admin_status(&self, path: &'static str) -> Option<u16> {
        self.admin_get(path).await.map(|(status, _)| status)
    }

    /// The token endpoint's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.token_port)
    }

    /// The body of `/metrics` (empty when the operator does not answer).
    pub async fn metrics(&self) -> String {
        match self.admin_get("/metrics").await {
            Some((200, body)) => body,
            _ => String::new(),
        }
    }

    /// A value of `/metrics` (0 when the series does not exist yet).
    pub async fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    pub async fn wait_ready(&mut self) {
        self.wait_ready_within(Duration::from_secs(60)).await;
    }

    /// Waits until `/readyz` answers 200 (polling every 10 ms), panicking after `timeout`;
    /// returns the time since the process started.
    pub async fn wait_ready_within(&mut self, timeout: Duration) -> Duration {
        let deadline = Instant::now() + timeout;
        loop {
            if self.admin_status("/readyz").await == Some(200) {
                return self.started.elapsed();
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "m2m-operator exited with {status}; log:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "m2m-operator not ready in {timeout:?}; log:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends SIGKILL and waits for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (up to 20 s) for a clean exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.terminate();
    }
}
