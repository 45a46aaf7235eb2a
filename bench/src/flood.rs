//! `m2m-bench flood`: legitimate token traffic alone, then with a concurrent flood of wrong
//! secrets against the same client_id (from the same address), over the token router served
//! as the operator serves it and a fixture index of N apps. A control run floods `/healthz`
//! instead, to show what any flood of the same weight costs on the shared cores.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use m2m_operator::{
    admin,
    credentials::{generate::ClientSecret, hash},
    token::{self, TokenService, jwt::Algorithm},
};
use m2m_operator_testkit::world as testing;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::{
    load::{self, Load, oha},
    promtext,
    report::{date, machine, write_section},
    token::{SECRET, basic_auth, config, serve_token, world},
};

pub struct Options {
    pub apps: u64,
    pub seconds: u64,
    pub connections: u64,
    /// Wrong-secret requests per second of the rate-limited flood.
    pub rate: f64,
    pub write: PathBuf,
    pub oha: String,
    pub wrk: String,
}

/// Token requests of the flooded server by outcome, from its registry.
fn outcomes(registry: &Registry) -> std::collections::BTreeMap<Vec<String>, f64> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode metrics");
    promtext::by_labels(
        &promtext::parse(&text),
        "token_requests_total",
        &["outcome"],
    )
}

/// Long on purpose: one measured sequence whose steps share the timed window and the processes under test.
pub fn run(opts: Options) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shutdown = CancellationToken::new();
    let phc = testing::phc(&hash::hash(&ClientSecret::new(SECRET)).expect("hash"));
    let limits = token::Limits {
        max_concurrent: 1024,
        timeout: Duration::from_secs(10),
    };
    let mut registry = Registry::default();
    let (server, health, registry) = runtime.block_on(async {
        let service = Arc::new(TokenService::new(
            world(opts.apps, &phc).finish(),
            config(),
            &mut registry,
        ));
        service.set_keys(testing::key_ring(Algorithm::ES256).expect("key"));
        let server = serve_token(token::router(service, &limits), shutdown.clone()).await;
        let registry = Arc::new(registry);
        let health = serve_token(
            admin::router(
                admin::Readiness::default(),
                admin::Health::default(),
                registry.clone(),
            ),
            shutdown.clone(),
        )
        .await;
        (server, health, registry)
    });
    let url = |a: SocketAddr, p: &str| format!("http://{a}{p}");
    let token_url = url(server, "/oauth2/token");
    let uid = testing::uid(opts.apps / 2);
    let legit = basic_auth(&uid, SECRET);
    let wrong = basic_auth(&uid, "m2msec_wrong-secret-000000000000000000000000000");
    let first = oha(&opts.oha, &token_url, 1, 1, None, Some(&legit));
    assert!(first.ok > 0.99, "warm-up requests failed: {first:?}");
    let legit_load = || {
        load::peak(
            &opts.oha,
            &opts.wrk,
            &token_url,
            opts.seconds,
            opts.connections,
            Some(&legit),
        )
    };
    // A flood runs one second longer on each side than the legitimate load it surrounds.
    let with_flood = |target: String, rate: Option<f64>, auth: Option<String>| {
        std::thread::scope(|s| {
            let flood = s.spawn(|| {
                oha(
                    &opts.oha,
                    &target,
                    opts.seconds + 2,
                    opts.connections,
                    rate,
                    auth.as_deref(),
                )
            });
            std::thread::sleep(Duration::from_secs(1));
            let legit = legit_load();
            (legit, flood.join().expect("flood thread"))
        })
    };
    // Runs on this machine differ by up to +-25%: the reference is the mean of a run before
    // and a run after the floods.
    let alone_before = legit_load();
    let before = outcomes(&registry);
    let rated = with_flood(token_url.clone(), Some(opts.rate), Some(wrong.clone()));
    let unbounded = with_flood(token_url.clone(), None, Some(wrong.clone()));
    let after = outcomes(&registry);
    let control = with_flood(url(health, "/healthz"), None, None);
    let alone_after = legit_load();
    shutdown.cancel();
    for l in [alone_before, alone_after, rated.0, unbounded.0, control.0] {
        assert!(l.ok > 0.99, "legitimate requests failed: {l:?}");
    }
    let alone = Load {
        rps: (alone_before.rps + alone_after.rps) / 2.0,
        p50_ms: (alone_before.p50_ms + alone_after.p50_ms) / 2.0,
        p99_ms: (alone_before.p99_ms + alone_after.p99_ms) / 2.0,
        ok: 1.0,
    };
    let flood_outcomes = promtext::delta(&before, &after);
    let table = render(
        &opts,
        alone,
        (alone_before, alone_after),
        rated,
        unbounded,
        control,
        &flood_outcomes,
    );
    println!("{table}");
    write_section(&opts.write, &format!("flood-{}", opts.apps), &table);
}

fn render(
    opts: &Options,
    alone: Load,
    alone_runs: (Load, Load),
    rated: (Load, Load),
    unbounded: (Load, Load),
    control: (Load, Load),
    outcomes: &std::collections::BTreeMap<Vec<String>, f64>,
) -> String {
    let row = |name: &str, l: Load, flood: Option<Load>| {
        format!(
            "| {name} | {:.0} | {:.3} | {:.3} | {:.2} | {} |",
            l.rps,
            l.p50_ms,
            l.p99_ms,
            l.rps / alone.rps,
            flood.map_or(String::new(), |f| format!("{:.0}", f.rps))
        )
    };
    let outcome_text: Vec<String> = outcomes
        .iter()
        .filter(|(k, _)| k[0] != "issued")
        .map(|(k, v)| format!("{} {v:.0}", k[0]))
        .collect();
    let met = |l: Load| {
        if l.rps / alone.rps >= 0.8 {
            "yes"
        } else {
            "no"
        }
    };
    [
        format!("### Token endpoint under a wrong-secret flood, {} apps in the index\n", opts.apps),
        format!(
            "{}, {}. Command: `hack/bench.sh flood --apps {} --rate {:.0}`: legitimate load with {}, {} connections, {} s; the floods with oha, {} connections, wrong secrets for the same client_id from the same address, starting 1 s before and ending 1 s after the legitimate load; everything on the same two cores.\n",
            date(),
            machine(),
            opts.apps,
            opts.rate,
            if opts.wrk.is_empty() { "oha" } else { "wrk (one thread)" },
            opts.connections,
            opts.seconds,
            opts.connections
        ),
        "| legitimate load | tokens/s | p50 ms | p99 ms | share of alone (mean of both) | flood requests/s |".into(),
        "|---|---:|---:|---:|---:|---:|".into(),
        row("alone, before the floods", alone_runs.0, None),
        row("alone, after the floods", alone_runs.1, None),
        row(&format!("with a wrong-secret flood at {:.0}/s", opts.rate), rated.0, Some(rated.1)),
        row("with an unbounded wrong-secret flood", unbounded.0, Some(unbounded.1)),
        row("with an unbounded `/healthz` flood (control)", control.0, Some(control.1)),
        String::new(),
        format!(
            "Answers to the wrong-secret floods (both runs): {}.\n",
            outcome_text.join(", ")
        ),
        "| target: legitimate clients keep >= 0.8 of their throughput | share | met |".into(),
        "|---|---:|---|".into(),
        format!("| wrong-secret flood at {:.0}/s | {:.2} | {} |", opts.rate, rated.0.rps / alone.rps, met(rated.0)),
        format!("| unbounded wrong-secret flood | {:.2} | {} |", unbounded.0.rps / alone.rps, met(unbounded.0)),
        format!(
            "| unbounded wrong-secret flood / unbounded `/healthz` flood (the cost of the wrong secrets themselves) | {:.2} | {} |",
            unbounded.0.rps / control.0.rps,
            if unbounded.0.rps / control.0.rps >= 0.8 { "yes" } else { "no" }
        ),
    ]
    .join("\n")
}
