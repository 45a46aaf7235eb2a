//! Benchmarks (not tests): `m2m-bench token` measures the token endpoint with a standard HTTP
//! load generator (oha) next to the same binary's `/healthz`, the raw ES256 signing rate of two
//! threads, and the same server with a plain SHA-256 secret check; prints a table and writes it
//! into docs/benchmarks.md. Run it through `hack/bench.sh token`.

// A benchmark aborts on any setup failure; there is nothing to recover.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use clap::{Parser, Subcommand};
use k8s_openapi::jiff::Timestamp;
use m2m_operator::{
    admin,
    credentials::{
        generate::{ClientSecret, client_id},
        hash,
    },
    testing::{self, FixtureApp, World},
    token::{
        self,
        claims::{self, Granted},
        jwt::Algorithm,
        service::{TokenConfig, TokenService},
    },
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

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

/// wrk script: POST a token request and print the result as one JSON line.
const WRK_SCRIPT: &str = r#"
wrk.method = os.getenv("M2M_METHOD")
if wrk.method == "POST" then
  wrk.body = "grant_type=client_credentials"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = os.getenv("M2M_AUTH")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"bad_status":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"#;

/// A peak-throughput run with wrk (one thread).
fn wrk(bin: &str, url: &str, seconds: u64, connections: u64, token_request: bool) -> Load {
    let script = std::env::temp_dir().join(format!("m2m-bench-{}.lua", std::process::id()));
    std::fs::write(&script, WRK_SCRIPT).expect("write wrk script");
    let auth = STANDARD.encode(format!("{}:{SECRET}", client_id(&testing::uid(0))));
    let out = Command::new(bin)
        .args([
            "-t1",
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .env("M2M_METHOD", if token_request { "POST" } else { "GET" })
        .env("M2M_AUTH", format!("Basic {auth}"))
        .output()
        .unwrap_or_else(|e| panic!("running {bin} (install it with hack/bench.sh): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("{}");
    let json: Value = serde_json::from_str(line).unwrap_or_default();
    let requests = json["requests"].as_f64().unwrap_or(0.0);
    let bad = json["bad_status"].as_f64().unwrap_or(0.0) + json["errors"].as_f64().unwrap_or(0.0);
    Load {
        rps: requests / (json["duration_us"].as_f64().unwrap_or(1.0) / 1e6),
        p50_ms: json["p50_us"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        p99_ms: json["p99_us"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        ok: if requests > 0.0 {
            (requests - bad) / requests
        } else {
            0.0
        },
    }
}

const SECRET: &str = "m2msec_benchmark-secret-0000000000000000000000";

fn config() -> TokenConfig {
    TokenConfig {
        operator_namespace: "m2m-system".into(),
        issuer: "https://m2m.example.com".into(),
        token_url: "https://m2m.example.com/oauth2/token".into(),
        argon2_workers: 2,
        argon2_max_in_flight: 64,
        max_failures_per_client: 10,
        max_failures_per_source: 100,
        failure_window: Duration::from_secs(60),
    }
}

/// A world of `apps` apps in 1 + apps/100 organizations, each app with `current` as its hash.
fn world(apps: u64, current: &str) -> World {
    let mut w = World::new("m2m-system");
    let orgs = 1 + apps / 100;
    for o in 0..orgs {
        let ns = format!("tenant-{o}");
        w.namespace(&ns);
        w.org(
            &format!("org-{o}"),
            &format!("org_{o}"),
            &ns,
            &["read", "write"],
            false,
        );
    }
    for n in 0..apps {
        let o = n % orgs;
        w.app(&FixtureApp {
            uid: testing::uid(n),
            name: format!("app-{n}"),
            namespace: format!("tenant-{o}"),
            org: Some(format!("org-{o}")),
            scopes: vec!["read".into(), "write".into()],
            audiences: vec!["https://api.example.com".into()],
            disabled: false,
            current: current.to_owned(),
        });
    }
    w
}

async fn serve(router: axum::Router, shutdown: CancellationToken) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // As token::serve does.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    });
    addr
}

#[derive(Debug, Clone, Copy)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Share of responses with status 200.
    ok: f64,
}

fn oha(
    bin: &str,
    url: &str,
    seconds: u64,
    connections: u64,
    rate: Option<f64>,
    token_request: bool,
) -> Load {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--no-tui",
        "--output-format",
        "json",
        "-z",
        &format!("{seconds}s"),
        "-c",
        &connections.to_string(),
    ]);
    if let Some(rate) = rate {
        cmd.args(["-q", &format!("{rate:.0}")]);
    }
    if token_request {
        let auth = STANDARD.encode(format!("{}:{SECRET}", client_id(&testing::uid(0))));
        cmd.args(["-m", "POST", "-H", &format!("Authorization: Basic {auth}")]);
        cmd.args([
            "-T",
            "application/x-www-form-urlencoded",
            "-d",
            "grant_type=client_credentials",
        ]);
    }
    cmd.arg(url);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {bin} (install it with hack/bench.sh): {e}"));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "oha output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let ms = |p: &str| json["latencyPercentiles"][p].as_f64().unwrap_or(f64::NAN) * 1000.0;
    Load {
        rps: json["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        p50_ms: ms("p50"),
        p99_ms: ms("p99"),
        ok: {
            let codes = json["statusCodeDistribution"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let total: f64 = codes.values().filter_map(Value::as_f64).sum();
            let ok = codes.get("200").and_then(Value::as_f64).unwrap_or(0.0);
            if total > 0.0 { ok / total } else { 0.0 }
        },
    }
}

/// Signatures per second of `threads` threads signing a typical access token with ES256.
fn raw_es256(threads: usize, seconds: u64) -> f64 {
    let ring = Arc::new(testing::key_ring(Algorithm::ES256).expect("key"));
    let granted = Granted {
        scopes: vec!["read".into(), "write".into()],
        audiences: vec!["https://api.example.com".into()],
    };
    let claims = claims::claims(
        "https://m2m.example.com",
        &client_id(&testing::uid(0)),
        Some("org_0"),
        &granted,
        0,
        900,
        "jti".into(),
    );
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let ring = ring.clone();
            let claims = claims.clone();
            std::thread::spawn(move || {
                let key = ring.active(Timestamp::now()).expect("active key");
                let deadline = Instant::now() + Duration::from_secs(seconds);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let _ = key.sign("at+jwt", &claims).expect("sign");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    total as f64 / seconds as f64
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

fn write_section(path: &PathBuf, marker: &str, content: &str) {
    let start = format!("<!-- {marker}:start -->");
    let end = format!("<!-- {marker}:end -->");
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let section = format!("{start}\n{content}\n{end}");
    let new = match (text.find(&start), text.find(&end)) {
        (Some(s), Some(e)) if e > s => {
            format!("{}{}{}", &text[..s], section, &text[e + end.len()..])
        }
        _ => format!("{}\n\n{section}\n", text.trim_end()),
    };
    std::fs::write(path, new).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn hex_sha256(s: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn token_scenario(
    apps: u64,
    seconds: u64,
    connections: u64,
    write: &PathBuf,
    oha_bin: &str,
    wrk_bin: &str,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shutdown = CancellationToken::new();
    let phc = testing::phc(&hash::hash(&ClientSecret::new(SECRET)).expect("hash"));
    let sha = hex_sha256(SECRET);
    let limits = token::Limits {
        max_concurrent: 1024,
        timeout: Duration::from_secs(10),
    };
    let (argon, plain, health) = runtime.block_on(async {
        let mut registry = prometheus_client::registry::Registry::default();
        let argon = Arc::new(TokenService::new(
            world(apps, &phc).finish(),
            config(),
            &mut registry,
        ));
        argon.set_keys(testing::key_ring(Algorithm::ES256).expect("key"));
        let plain = Arc::new(
            TokenService::new(world(apps, &sha).finish(), config(), &mut registry)
                .with_plain_sha256_baseline(),
        );
        plain.set_keys(testing::key_ring(Algorithm::ES256).expect("key"));
        let argon_addr = serve(token::router(argon, &limits), shutdown.clone()).await;
        let plain_addr = serve(token::router(plain, &limits), shutdown.clone()).await;
        let health_addr = serve(
            admin::router(admin::Readiness::default(), Arc::new(registry)),
            shutdown.clone(),
        )
        .await;
        (argon_addr, plain_addr, health_addr)
    });
    let url = |a: SocketAddr, p: &str| format!("http://{a}{p}");
    // Warm-up: the first request per client pays argon2id once.
    let first = oha(oha_bin, &url(argon, "/oauth2/token"), 1, 1, None, true);
    assert!(first.ok > 0.99, "warm-up requests failed: {first:?}");
    let peak = |u: String, token_request: bool| {
        if wrk_bin.is_empty() {
            oha(oha_bin, &u, seconds, connections, None, token_request)
        } else {
            wrk(wrk_bin, &u, seconds, connections, token_request)
        }
    };
    let healthz = peak(url(health, "/healthz"), false);
    let argon_load = peak(url(argon, "/oauth2/token"), true);
    let plain_load = peak(url(plain, "/oauth2/token"), true);
    let half_rate = argon_load.rps / 2.0;
    let half = oha(
        oha_bin,
        &url(argon, "/oauth2/token"),
        seconds,
        connections,
        Some(half_rate),
        true,
    );
    let raw = raw_es256(2, 3);
    shutdown.cancel();
    for load in [healthz, argon_load, plain_load, half] {
        assert!(
            load.ok > 0.99,
            "requests failed during the benchmark: {load:?}"
        );
    }

    let date = Timestamp::now().strftime("%Y-%m-%d").to_string();
    let machine = machine();
    let row = |name: &str, l: Load| {
        format!(
            "| {name} | {:.0} | {:.3} | {:.3} |",
            l.rps, l.p50_ms, l.p99_ms
        )
    };
    let table = [
        format!("### Token endpoint, {apps} apps in the index\n"),
        format!(
            "{date}, {machine}. Command: `hack/bench.sh token --apps {apps}`: peak runs with {}, the half-of-peak run with oha (rate-limited), {connections} connections, {seconds} s per run, the load generator on the same two cores.\n",
            if wrk_bin.is_empty() { "oha" } else { "wrk (one thread)" }
        ),
        "| measurement | requests/s | p50 ms | p99 ms |".into(),
        "|---|---:|---:|---:|".into(),
        row("`/healthz` of the same binary", healthz),
        row("token, argon2id-hashed secret (steady state)", argon_load),
        row("token, plain SHA-256 check (baseline)", plain_load),
        row(&format!("token at half of peak ({half_rate:.0}/s offered)"), half),
        format!("| raw ES256 signing, 2 threads | {raw:.0} | | |"),
        String::new(),
        "| ratio | value | target |".into(),
        "|---|---:|---|".into(),
        format!("| token / raw ES256 signing (2 threads) | {:.2} | >= 0.35 |", argon_load.rps / raw),
        format!("| argon2id / plain SHA-256, steady state | {:.2} | >= 0.95 |", argon_load.rps / plain_load.rps),
        format!("| p99 at half of peak | {:.3} ms | < 2 ms |", half.p99_ms),
    ]
    .join("\n");
    println!("{table}");
    write_section(write, &format!("token-{apps}"), &table);
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
        } => token_scenario(apps, seconds, connections, &write, &oha, &wrk),
    }
}
