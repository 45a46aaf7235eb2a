//! `m2m-bench peer`: Ory Hydra v2.3.0 (the peer users compare with) beside our token endpoint,
//! in one run on the same cores, with the same load generator, connections and duration, rounds
//! alternated: ours, an endpoint on the same listener that only signs (what these cores can
//! give at most), Hydra with its default opaque tokens, Hydra with its JWT strategy.
//!
//! Hydra runs as its users run it for a test: `hydra serve all --dev` with `DSN=memory` and its
//! default secret hasher (pbkdf2), one client registered through its admin API, its request log
//! to /dev/null like our audit lines. `hack/bench.sh peer` builds it (`--hydra`).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Json, Router, routing::post};
use base64::{Engine, engine::general_purpose::STANDARD};
use k8s_openapi::jiff::Timestamp;
use m2m_operator::token::jwt::Algorithm;
use m2m_operator_testkit::world as testing;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{
    http,
    load::{Load, peak},
    report::{date, machine, write_section},
    stats::median,
    token::{SECRET, basic_auth, serve_fixture_endpoint, serve_token, typical_claims},
};

pub struct Options {
    pub hydra: PathBuf,
    pub rounds: u64,
    pub seconds: u64,
    pub connections: u64,
    pub write: PathBuf,
    pub oha: String,
    pub wrk: String,
}

const HYDRA_CLIENT: &str = "bench-client";
const HYDRA_SECRET: &str = "bench-secret-0123456789abcdefghijklmnop";

/// A Hydra process, stopped (by its PID) when dropped.
struct Hydra {
    child: Child,
    public: SocketAddr,
}

impl Drop for Hydra {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Starts Hydra with `strategy` (`opaque` or `jwt`), waits until ready, registers the client.
fn start_hydra(bin: &Path, strategy: &str) -> Hydra {
    let (public, admin) = (free_port(), free_port());
    let child = Command::new(bin)
        .args(["serve", "all", "--dev"])
        .env("DSN", "memory")
        .env("SECRETS_SYSTEM", "benchmark-system-secret-0123456789abcdef")
        .env("URLS_SELF_ISSUER", format!("http://127.0.0.1:{public}/"))
        .env("SERVE_PUBLIC_HOST", "127.0.0.1")
        .env("SERVE_PUBLIC_PORT", public.to_string())
        .env("SERVE_ADMIN_HOST", "127.0.0.1")
        .env("SERVE_ADMIN_PORT", admin.to_string())
        .env("STRATEGIES_ACCESS_TOKEN", strategy)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "starting {} (hack/bench.sh peer builds it): {e}",
                bin.display()
            )
        });
    let hydra = Hydra {
        child,
        public: SocketAddr::from(([127, 0, 0, 1], public)),
    };
    let admin = SocketAddr::from(([127, 0, 0, 1], admin));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http::get(admin, "/health/ready").is_ok_and(|(status, _)| status == 200) {
        assert!(
            Instant::now() < deadline,
            "Hydra ({strategy}) not ready within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let client = json!({
        "client_id": HYDRA_CLIENT,
        "client_secret": HYDRA_SECRET,
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "read write",
    });
    let (status, body) = http::request(
        admin,
        "POST",
        "/admin/clients",
        &[("Content-Type", "application/json")],
        &client.to_string(),
    )
    .expect("register the Hydra client");
    assert!(status == 201, "Hydra refused the client ({status}): {body}");
    hydra
}

/// The token route on the same listener, doing only what every token response must: sign a
/// typical access token with the same ES256 key type and answer with it.
fn sign_only_router() -> Router {
    let ring = Arc::new(testing::key_ring(Algorithm::ES256).expect("key"));
    let claims = typical_claims();
    Router::new().route(
        "/oauth2/token",
        post(move || {
            let (ring, claims) = (ring.clone(), claims.clone());
            async move {
                let key = ring.active(Timestamp::now()).expect("active key");
                let token = key.sign("at+jwt", &claims).expect("sign");
                Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 900}))
            }
        }),
    )
}

struct Round {
    ours: Load,
    sign_only: Load,
    hydra_opaque: Load,
    hydra_jwt: Load,
}

pub fn run(o: Options) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shutdown = CancellationToken::new();
    let (ours, sign_only) = runtime.block_on(async {
        let (ours, _registry) = serve_fixture_endpoint(100, shutdown.clone()).await;
        (
            ours,
            serve_token(sign_only_router(), shutdown.clone()).await,
        )
    });
    let opaque = start_hydra(&o.hydra, "opaque");
    let jwt = start_hydra(&o.hydra, "jwt");
    let url = |a: SocketAddr| format!("http://{a}/oauth2/token");
    let our_auth = basic_auth(&testing::uid(0), SECRET);
    let hydra_auth = format!(
        "Basic {}",
        STANDARD.encode(format!("{HYDRA_CLIENT}:{HYDRA_SECRET}"))
    );
    let run = |a: SocketAddr, auth: &str| {
        peak(
            &o.oha,
            &o.wrk,
            &url(a),
            o.seconds,
            o.connections,
            Some(auth),
        )
    };
    // Warm-up, one request each: our first request per client pays argon2id once; Hydra's
    // first loads its keys. A server that does not answer 200 stops the run, saying what it said.
    for (a, auth) in [
        (ours, &our_auth),
        (sign_only, &our_auth),
        (opaque.public, &hydra_auth),
        (jwt.public, &hydra_auth),
    ] {
        let form = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        let answer = http::request(
            a,
            "POST",
            "/oauth2/token",
            &form,
            "grant_type=client_credentials",
        );
        assert!(
            matches!(answer, Ok((200, _))),
            "warm-up request to {a} failed: {answer:?}"
        );
    }
    let rounds: Vec<Round> = (0..o.rounds.max(1))
        .map(|_| Round {
            ours: run(ours, &our_auth),
            sign_only: run(sign_only, &our_auth),
            hydra_opaque: run(opaque.public, &hydra_auth),
            hydra_jwt: run(jwt.public, &hydra_auth),
        })
        .collect();
    shutdown.cancel();
    drop((opaque, jwt));
    // Ours must answer every request; the peer's failures (wrk's 2 s timeout, non-200) are
    // shown in the table instead of stopping the run.
    for r in &rounds {
        for l in [r.ours, r.sign_only] {
            assert!(l.ok > 0.99, "requests failed during the benchmark: {l:?}");
        }
    }
    let table = render(&o, &rounds);
    println!("{table}");
    write_section(&o.write, "peer", &table);
}

fn render(o: &Options, rounds: &[Round]) -> String {
    let med = |f: &dyn Fn(&Round) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    let each = |f: &dyn Fn(&Round) -> f64| {
        rounds
            .iter()
            .map(|r| format!("{:.1}", f(r)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let row = |name: &str, f: &dyn Fn(&Round) -> Load| {
        format!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.1} |",
            med(&|r| f(r).rps),
            med(&|r| f(r).p50_ms),
            med(&|r| f(r).p99_ms),
            100.0 * med(&|r| f(r).ok)
        )
    };
    let ratio =
        |name: &str, f: &dyn Fn(&Round) -> f64| format!("| {name} | {:.1} | {} |", med(f), each(f));
    [
        "### Token endpoint beside Ory Hydra v2.3.0, client credentials, one client\n".to_string(),
        format!(
            "{}, {}. Command: `hack/bench.sh peer`: {} rounds, each running the four servers one after the other with {}, {} connections, {} s each, the load generator on the same two cores; HTTP Basic client authentication; every server logs each request (ours: the JSON audit line; Hydra: its request log), to /dev/null. Figures are medians over the rounds.\n",
            date(),
            machine(),
            rounds.len(),
            if o.wrk.is_empty() { "oha" } else { "wrk (one thread)" },
            o.connections,
            o.seconds
        ),
        "| server | requests/s | p50 ms | p99 ms | answered 200, % |".into(),
        "|---|---:|---:|---:|---:|".into(),
        row("m2m-operator token endpoint (argon2id secret, ES256 JWT, 100 apps)", &|r| r.ours),
        row("same listener, a route that only signs an ES256 JWT (the practical limit)", &|r| r.sign_only),
        row("Hydra, opaque tokens (default; pbkdf2 secret, `DSN=memory`)", &|r| r.hydra_opaque),
        row("Hydra, JWT strategy (RS256; pbkdf2 secret, `DSN=memory`)", &|r| r.hydra_jwt),
        String::new(),
        "| ratio | median | each round |".into(),
        "|---|---:|---|".into(),
        ratio("ours / Hydra opaque", &|r| r.ours.rps / r.hydra_opaque.rps),
        ratio("ours / Hydra JWT", &|r| r.ours.rps / r.hydra_jwt.rps),
        format!(
            "| ours / sign-only on the same listener | {:.2} | {} |",
            med(&|r| r.ours.rps / r.sign_only.rps),
            rounds
                .iter()
                .map(|r| format!("{:.2}", r.ours.rps / r.sign_only.rps))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ]
    .join("\n")
}
