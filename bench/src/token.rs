//! `m2m-bench token`: the token endpoint under load next to the same binary's `/healthz` and the
//! raw ES256 signing rate of two threads.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use k8s_openapi::jiff::Timestamp;
use m2m_operator::{
    admin,
    credentials::{
        generate::{ClientSecret, client_id},
        hash,
    },
    token::{
        self, TokenConfig, TokenService,
        claims::{self, Granted},
        jwt::Algorithm,
    },
};
use m2m_operator_testkit::world::{self as testing, FixtureApp, World};
use tokio_util::sync::CancellationToken;

use crate::{
    load::{self, Load, oha},
    report::{date, machine, write_section},
    stats::median,
};

pub const SECRET: &str = "m2msec_benchmark-secret-0000000000000000000000";

pub fn config() -> TokenConfig {
    TokenConfig {
        operator_namespace: "m2m-system".into(),
        issuer: "https://m2m.example.com".into(),
        token_url: "https://m2m.example.com/oauth2/token".into(),
        argon2_workers: 2,
        argon2_max_in_flight: 64,
        max_failures_per_client: 10,
        max_failures_per_source: 100,
        failure_window: Duration::from_secs(60),
        trusted_proxies: Default::default(),
        global_apps: m2m_operator::tenancy::GlobalApps::anywhere(),
    }
}

/// A world of `apps` apps, each in its own Organization and namespace (as many tenants as
/// apps: what grows with the number of tenants shows), each app with `current` as its hash.
pub fn world(apps: u64, current: &str) -> World {
    let mut w = World::new("m2m-system");
    let orgs = apps.max(1);
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

/// The token router served as the operator serves it (`token::serve`).
pub async fn serve_token(router: axum::Router, shutdown: CancellationToken) -> SocketAddr {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    tokio::spawn(token::serve(addr, router, Default::default(), shutdown));
    tokio::time::sleep(Duration::from_millis(200)).await;
    addr
}

/// One round of the token scenario.
struct Round {
    argon: Load,
    half_rate: f64,
    half: Load,
    raw: f64,
}

/// The real token router over a fixture index of `apps` apps (each in its own Organization,
/// every secret [`SECRET`], ES256 keys) on a listener of its own; the registry holds its metrics.
pub async fn serve_fixture_endpoint(
    apps: u64,
    shutdown: CancellationToken,
) -> (SocketAddr, prometheus_client::registry::Registry) {
    let phc = testing::phc(&hash::hash(&ClientSecret::new(SECRET)).expect("hash"));
    let limits = token::Limits {
        max_concurrent: 1024,
        timeout: Duration::from_secs(10),
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let service = Arc::new(TokenService::new(
        world(apps, &phc).finish(),
        config(),
        &mut registry,
    ));
    service.set_keys(testing::key_ring(Algorithm::ES256).expect("key"));
    let addr = serve_token(token::router(service, &limits), shutdown).await;
    (addr, registry)
}

/// A typical access token's claims (two scopes, one audience, an org code).
pub fn typical_claims() -> claims::AccessClaims {
    let granted = Granted {
        scopes: vec!["read".into(), "write".into()],
        audiences: vec!["https://api.example.com".into()],
    };
    claims::claims(
        "https://m2m.example.com",
        &client_id(&testing::uid(0)),
        Some("org_0"),
        &granted,
        0,
        900,
        "jti".into(),
    )
}

/// Signatures per second of `threads` threads signing a typical access token with ES256.
fn raw_es256(threads: usize, seconds: u64) -> f64 {
    let ring = Arc::new(testing::key_ring(Algorithm::ES256).expect("key"));
    let claims = typical_claims();
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

/// The `Authorization: Basic` value of the client whose app has `uid`.
pub fn basic_auth(uid: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{secret}", client_id(uid)))
    )
}

/// Long on purpose: one measured sequence whose steps share the timed window and the processes under test.
pub fn run(
    apps: u64,
    rounds: u64,
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
    let (argon, health) = runtime.block_on(async {
        let (argon_addr, registry) = serve_fixture_endpoint(apps, shutdown.clone()).await;
        let health_addr = serve_token(
            admin::router(
                admin::Readiness::default(),
                admin::Health::default(),
                Arc::new(registry),
            ),
            shutdown.clone(),
        )
        .await;
        (argon_addr, health_addr)
    });
    let url = |a: SocketAddr, p: &str| format!("http://{a}{p}");
    // Warm-up: the first request per client pays argon2id once.
    let auth = basic_auth(&testing::uid(0), SECRET);
    let first = oha(
        oha_bin,
        &url(argon, "/oauth2/token"),
        1,
        1,
        None,
        Some(&auth),
    );
    assert!(first.ok > 0.99, "warm-up requests failed: {first:?}");
    let peak = |u: String, auth: Option<&str>| {
        load::peak(oha_bin, wrk_bin, &u, seconds, connections, auth)
    };
    let healthz = peak(url(health, "/healthz"), None);
    // Rounds, each measuring the token server and the raw signing rate back to back: the ratios
    // of one round share the machine's state of that moment, and the medians over rounds are
    // what a slow drift of a shared machine moves least.
    let rounds: Vec<Round> = (0..rounds.max(1))
        .map(|_| {
            let argon_load = peak(url(argon, "/oauth2/token"), Some(&auth));
            let half_rate = argon_load.rps / 2.0;
            let half = oha(
                oha_bin,
                &url(argon, "/oauth2/token"),
                seconds,
                connections,
                Some(half_rate),
                Some(&auth),
            );
            Round {
                argon: argon_load,
                half_rate,
                half,
                raw: raw_es256(2, 3),
            }
        })
        .collect();
    shutdown.cancel();
    let loads = rounds.iter().flat_map(|r| [r.argon, r.half]);
    for load in std::iter::once(healthz).chain(loads) {
        assert!(
            load.ok > 0.99,
            "requests failed during the benchmark: {load:?}"
        );
    }

    let date = date();
    let machine = machine();
    let med = |f: &dyn Fn(&Round) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    let each = |f: &dyn Fn(&Round) -> f64, digits: usize| {
        rounds
            .iter()
            .map(|r| format!("{:.digits$}", f(r)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let load_row = |name: &str, f: &dyn Fn(&Round) -> Load| {
        format!(
            "| {name} | {:.0} | {:.3} | {:.3} |",
            med(&|r| f(r).rps),
            med(&|r| f(r).p50_ms),
            med(&|r| f(r).p99_ms)
        )
    };
    let ratio = |r: &Round| r.argon.rps / r.raw;
    let half_p99 = |r: &Round| r.half.p99_ms;
    let table = [
        format!("### Token endpoint, {apps} apps in the index, each its own Organization\n"),
        format!(
            "{date}, {machine}. Command: `hack/bench.sh token --apps {apps}`: {} rounds, each a peak run of both servers with {}, a run at half of that peak with oha (rate-limited) and 3 s of raw signing, back to back; {connections} connections, {seconds} s per run, the load generator on the same two cores; the servers write the operator's JSON audit line for every request. Figures are medians over the rounds.\n",
            rounds.len(),
            if wrk_bin.is_empty() { "oha" } else { "wrk (one thread)" }
        ),
        "| measurement | requests/s | p50 ms | p99 ms |".into(),
        "|---|---:|---:|---:|".into(),
        format!(
            "| `/healthz` through the same listener (HTTP alone, once) | {:.0} | {:.3} | {:.3} |",
            healthz.rps, healthz.p50_ms, healthz.p99_ms
        ),
        load_row("token, argon2id-hashed secret (steady state)", &|r| r.argon),
        load_row(
            &format!(
                "token at half of peak ({:.0}/s offered)",
                med(&|r| r.half_rate)
            ),
            &|r| r.half,
        ),
        format!("| raw ES256 signing, 2 threads | {:.0} | | |", med(&|r| r.raw)),
        String::new(),
        "| ratio | median | each round | target |".into(),
        "|---|---:|---|---|".into(),
        format!(
            "| token / raw ES256 signing (2 threads) | {:.2} | {} | >= 0.35 |",
            med(&ratio),
            each(&ratio, 2)
        ),
        format!(
            "| p99 at half of peak, ms | {:.3} | {} | < 2 |",
            med(&half_p99),
            each(&half_p99, 3)
        ),
    ]
    .join("\n");
    println!("{table}");
    write_section(write, &format!("token-{apps}"), &table);
}
