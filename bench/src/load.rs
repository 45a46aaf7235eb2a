//! Standard HTTP load generators driven as subprocesses: wrk (peak runs, light on the shared
//! cores) and oha (rate-limited runs). A token request is a POST of the client_credentials
//! grant with the given `Authorization` header; without one, a GET.

use std::process::Command;

use serde_json::Value;

#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Share of responses with status 200.
    pub ok: f64,
}

/// wrk script: POST a token request and print the result as one JSON line.
const WRK_SCRIPT: &str = r#"
wrk.method = os.getenv("M2M_METHOD")
if wrk.method == "POST" then
  local body = os.getenv("M2M_BODY")
  if body == nil or body == "" then body = "grant_type=client_credentials" end
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  local auth = os.getenv("M2M_AUTH")
  if auth ~= nil and auth ~= "" then wrk.headers["Authorization"] = auth end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"bad_status":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"#;

/// A peak-throughput run: with wrk (one thread), or with oha when `wrk_bin` is empty.
pub fn peak(
    oha_bin: &str,
    wrk_bin: &str,
    url: &str,
    seconds: u64,
    connections: u64,
    auth: Option<&str>,
) -> Load {
    if wrk_bin.is_empty() {
        oha(oha_bin, url, seconds, connections, None, auth)
    } else {
        wrk(wrk_bin, url, seconds, connections, auth)
    }
}

/// A peak-throughput run with wrk (one thread).
pub fn wrk(bin: &str, url: &str, seconds: u64, connections: u64, auth: Option<&str>) -> Load {
    wrk_post(bin, url, seconds, connections, auth, None)
}

/// A peak-throughput run with wrk (one thread) posting `body` (default: the bare grant) with
/// `auth` as `Authorization`, if given; a GET without either.
pub fn wrk_post(
    bin: &str,
    url: &str,
    seconds: u64,
    connections: u64,
    auth: Option<&str>,
    body: Option<&str>,
) -> Load {
    let script = std::env::temp_dir().join(format!("m2m-bench-{}.lua", std::process::id()));
    std::fs::write(&script, WRK_SCRIPT).expect("write wrk script");
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
        .env(
            "M2M_METHOD",
            if auth.is_some() || body.is_some() {
                "POST"
            } else {
                "GET"
            },
        )
        .env("M2M_AUTH", auth.unwrap_or_default())
        .env("M2M_BODY", body.unwrap_or_default())
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

pub fn oha(
    bin: &str,
    url: &str,
    seconds: u64,
    connections: u64,
    rate: Option<f64>,
    auth: Option<&str>,
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
    if let Some(auth) = auth {
        cmd.args(["-m", "POST", "-H", &format!("Authorization: {auth}")]);
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
