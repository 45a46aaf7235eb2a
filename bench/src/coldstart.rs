//! `m2m-bench coldstart`: a fresh operator process over N existing apps: time from process
//! start to `/readyz`, to the controller having re-checked every app, and the cost of each
//! client's first token request (argon2id) against its later ones, both while the controller
//! re-checks and after.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::{
    cluster::{self, Operator},
    fixtures::{self, ReadyWatch, Tenants},
    http, promtext,
    report::{date, machine, write_section},
    stats::{self, Summary},
};

pub struct Options {
    pub apps: usize,
    pub apps_per_org: usize,
    /// Clients measured in each phase.
    pub clients: usize,
    pub concurrency: usize,
    pub write: PathBuf,
}

const QUIET: Duration = Duration::from_secs(5);

/// The time of a token request that must succeed.
fn timed_token(addr: SocketAddr, auth: &str) -> Duration {
    let t = Instant::now();
    let status = http::token_status(addr, auth).expect("token request");
    assert_eq!(status, 200, "token request");
    t.elapsed()
}

/// For each client in turn: its first request, then three more; (first, later) durations.
async fn first_and_later(addr: SocketAddr, auths: &[String]) -> (Vec<Duration>, Vec<Duration>) {
    let auths = auths.to_vec();
    tokio::task::spawn_blocking(move || {
        let (mut first, mut later) = (Vec::new(), Vec::new());
        for auth in &auths {
            first.push(timed_token(addr, auth));
            for _ in 0..3 {
                later.push(timed_token(addr, auth));
            }
        }
        (first, later)
    })
    .await
    .unwrap()
}

fn app_reconciles(m: &[promtext::Sample]) -> f64 {
    promtext::sum(m, "m2m_reconciles_total", &[("kind", "M2MApp")])
}

fn verifications(m: &[promtext::Sample]) -> f64 {
    promtext::sum(
        m,
        "m2m_controller_argon2_duration_seconds_count",
        &[("op", "verify")],
    )
}

pub async fn run(opts: Options) {
    assert!(opts.apps.is_multiple_of(opts.apps_per_org) && opts.apps > 0);
    let orgs = opts.apps / opts.apps_per_org;
    assert!(
        2 * opts.clients <= opts.apps,
        "--clients at most half of --apps"
    );
    let client = cluster::client().await;
    cluster::prepare(&client).await;

    let mut seed = Operator::spawn("coldstart-seed", &[]);
    seed.wait_ready(Duration::from_secs(60)).await;
    let tenants = Tenants::new("cold", opts.apps_per_org);
    let watch = ReadyWatch::start(&client, &tenants.selector()).await;
    eprintln!("[coldstart] creating {} apps", opts.apps);
    tenants
        .create_orgs(&client, 0..orgs, opts.concurrency)
        .await;
    tenants
        .create_apps(&client, 0..orgs, opts.concurrency)
        .await;
    watch
        .wait(
            opts.apps,
            Duration::from_secs(60).max(Duration::from_millis(300) * opts.apps as u32),
        )
        .await;
    drop(watch);
    seed.settle(QUIET, Duration::from_secs(1800), |_| true)
        .await;
    // Clients spread over the organizations (app 0 of every org-th tenant).
    let step = (orgs / (2 * opts.clients)).max(1);
    let mut auths = Vec::new();
    for i in 0..2 * opts.clients {
        let o = (i * step) % orgs;
        let k = (i * step) / orgs;
        auths.push(
            fixtures::basic_auth(
                &client,
                &tenants.namespace(o),
                &format!("{}-credentials", tenants.app(k)),
            )
            .await,
        );
    }
    seed.stop();

    eprintln!("[coldstart] restarting the operator");
    let mut operator = Operator::spawn("coldstart", &[]);
    let ready = operator.wait_ready(Duration::from_secs(300)).await;
    let rss_ready = operator.rss_mib();
    let during = first_and_later(operator.token, &auths[..opts.clients]).await;
    let checked_during = verifications(&operator.metrics().await);
    let settled = operator
        .settle(QUIET, Duration::from_secs(1800), |m| {
            app_reconciles(m) >= opts.apps as f64
        })
        .await;
    let checked = verifications(&operator.metrics().await);
    let cpu = operator.cpu_seconds();
    let rss_settled = operator.steady_rss_mib(3).await;
    let after = first_and_later(operator.token, &auths[opts.clients..]).await;
    operator.stop();
    tenants.delete(&client, None).await;

    let table = render(
        &opts,
        &Figures {
            ready,
            settled,
            cpu,
            rss_ready,
            rss_settled,
            checked_during,
            checked,
            during: (stats::summarize(&during.0), stats::summarize(&during.1)),
            after: (stats::summarize(&after.0), stats::summarize(&after.1)),
        },
    );
    println!("{table}");
    write_section(&opts.write, "coldstart", &table);
}

struct Figures {
    ready: Duration,
    settled: Duration,
    cpu: f64,
    rss_ready: f64,
    rss_settled: f64,
    checked_during: f64,
    checked: f64,
    during: (Summary, Summary),
    after: (Summary, Summary),
}

fn render(opts: &Options, f: &Figures) -> String {
    let latency = |name: &str, s: &Summary| {
        format!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            s.p50_ms, s.p99_ms, s.max_ms
        )
    };
    [
        "### Cold start with existing apps\n".to_owned(),
        format!(
            "{}, {}. Command: `hack/bench.sh coldstart --apps {} --clients {}` (a control plane of its own with {} M2MApps in {} Organizations, created by a first operator process that is then stopped; a new process is started and measured; {} clients right after `/readyz` and {} others once the controller is quiet, each with one first and three later requests, one at a time).\n",
            date(),
            machine(),
            opts.apps,
            opts.clients,
            opts.apps,
            opts.apps / opts.apps_per_org,
            opts.clients,
            opts.clients
        ),
        "| measurement | value |".into(),
        "|---|---:|".into(),
        format!("| process start to `/readyz` 200 (caches synced, signing key loaded) | {:.2} s |", f.ready.as_secs_f64()),
        format!(
            "| process start until the controller had reconciled every app and was quiet | {:.1} s |",
            f.settled.as_secs_f64()
        ),
        format!(
            "| argon2id verifications of Secrets by the controller until then (of {} apps) | {:.0} |",
            opts.apps, f.checked
        ),
        format!("| operator CPU until then | {:.1} s |", f.cpu),
        format!("| RSS at `/readyz` / once quiet | {:.1} / {:.1} MiB |", f.rss_ready, f.rss_settled),
        format!(
            "| argon2id verifications by the controller when the first {} clients were done | {:.0} |",
            opts.clients, f.checked_during
        ),
        String::new(),
        "| token request | p50 ms | p99 ms | max ms |".into(),
        "|---|---:|---:|---:|".into(),
        latency("first per client, right after `/readyz` (argon2id; the controller reconciles every app at the same time)", &f.during.0),
        latency("later requests of the same clients", &f.during.1),
        latency("first per client, controller quiet (argon2id)", &f.after.0),
        latency("later requests of the same clients", &f.after.1),
    ]
    .join("\n")
}
