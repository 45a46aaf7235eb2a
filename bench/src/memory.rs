//! `m2m-bench memory`: the operator's resident memory with 0, then 1k, then 10k M2MApps (each
//! with its Secret and client record) in the cluster, read from /proc/PID/status once it has
//! gone quiet; then a fresh process over the largest set.

use std::{path::PathBuf, time::Duration};

use crate::{
    cluster::{self, Operator},
    fixtures::{ReadyWatch, Tenants},
    promtext,
    report::{date, machine, write_section},
};

pub struct Options {
    /// Cumulative app counts to measure at, ascending.
    pub sizes: Vec<usize>,
    pub apps_per_org: usize,
    pub concurrency: usize,
    pub write: PathBuf,
    /// After the largest size, wait out kube's event cache (6 minutes), publish one more Event
    /// (a rotation of one app) and read again: the share of the Events the issuing burst
    /// published.
    pub after_event_cache: bool,
}

/// kube-runtime's `events::Recorder` keeps each published Event this long, evicting on the next
/// publish.
const EVENT_CACHE_TTL: Duration = Duration::from_secs(6 * 60 + 10);

/// One reading.
struct Point {
    label: String,
    apps: usize,
    rss: f64,
    peak: f64,
}

const QUIET: Duration = Duration::from_secs(5);

pub async fn run(opts: Options) {
    assert!(
        opts.sizes
            .iter()
            .all(|s| s.is_multiple_of(opts.apps_per_org)),
        "every size must be a multiple of --apps-per-org"
    );
    let client = cluster::client().await;
    cluster::prepare(&client).await;
    let mut operator = Operator::spawn("memory", &[]);
    operator.wait_ready(Duration::from_secs(60)).await;
    let settle = Duration::from_secs(1800);
    operator.settle(QUIET, settle, |_| true).await;
    let mut points = vec![Point {
        label: "0 (started, caches synced)".into(),
        apps: 0,
        rss: operator.steady_rss_mib(5).await,
        peak: operator.peak_rss_mib(),
    }];
    let tenants = Tenants::new("mem", opts.apps_per_org);
    let watch = ReadyWatch::start(&client, &tenants.selector()).await;
    let mut orgs_done = 0;
    for &size in &opts.sizes {
        let orgs = size / opts.apps_per_org;
        eprintln!("[memory] creating apps up to {size}");
        tenants
            .create_orgs(&client, orgs_done..orgs, opts.concurrency)
            .await;
        tenants
            .create_apps(&client, orgs_done..orgs, opts.concurrency)
            .await;
        orgs_done = orgs;
        watch
            .wait(
                size,
                Duration::from_secs(60).max(Duration::from_millis(300) * size as u32),
            )
            .await;
        operator.settle(QUIET, settle, |_| true).await;
        points.push(Point {
            label: format!("{size}"),
            apps: size,
            rss: operator.steady_rss_mib(5).await,
            peak: operator.peak_rss_mib(),
        });
    }
    drop(watch);
    let largest = opts.sizes.last().copied().unwrap_or(0);
    if opts.after_event_cache && largest > 0 {
        eprintln!("[memory] waiting {EVENT_CACHE_TTL:?} for kube's event cache to expire");
        tokio::time::sleep(EVENT_CACHE_TTL).await;
        let apps: kube::Api<m2m_operator::api::M2MApp> =
            kube::Api::namespaced(client.clone(), &tenants.namespace(0));
        let patch =
            serde_json::json!({"metadata": {"annotations": {"m2m.dev/rotate": "memory-bench"}}});
        apps.patch(
            &tenants.app(0),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("rotate one app");
        operator.settle(QUIET, settle, |_| true).await;
        points.push(Point {
            label: format!(
                "{largest}, 6 minutes later, after one more Event (kube's event cache evicted)"
            ),
            apps: largest,
            rss: operator.steady_rss_mib(5).await,
            peak: operator.peak_rss_mib(),
        });
    }
    if largest > 0 {
        // A restarted operator reconciles every app once before it is quiet.
        operator.stop();
        let mut fresh = Operator::spawn("memory-restarted", &[]);
        fresh.wait_ready(Duration::from_secs(120)).await;
        fresh
            .settle(QUIET, settle, |m| {
                promtext::sum(m, "m2m_reconciles_total", &[("kind", "M2MApp")]) >= largest as f64
            })
            .await;
        points.push(Point {
            label: format!("{largest}, restarted process (after its first pass over every app)"),
            apps: largest,
            rss: fresh.steady_rss_mib(5).await,
            peak: fresh.peak_rss_mib(),
        });
        fresh.stop();
    } else {
        operator.stop();
    }
    let table = render(&opts, &points);
    println!("{table}");
    write_section(&opts.write, "memory", &table);
}

fn render(opts: &Options, points: &[Point]) -> String {
    let base = points[0].rss;
    let sizes: Vec<String> = opts.sizes.iter().map(ToString::to_string).collect();
    let mut lines = vec![
        "### Operator memory by the number of M2MApps\n".to_owned(),
        format!(
            "{}, {}. Command: `hack/bench.sh memory --sizes {} --apps-per-org {}` (a control plane of its own; {} apps per Organization and namespace; each app has its Secret and its client record; RSS is VmRSS of the m2m-operator process, the median of 5 readings 1 s apart once no reconcile ran for {} s).\n",
            date(),
            machine(),
            sizes.join(","),
            opts.apps_per_org,
            opts.apps_per_org,
            QUIET.as_secs()
        ),
        "| M2MApps | RSS MiB | growth from 0 apps, MiB | bytes per app | bytes per app added since the row above | peak RSS so far (VmHWM) MiB |".into(),
        "|---|---:|---:|---:|---:|---:|".into(),
    ];
    let bytes_per_app =
        |mib: f64, apps: usize| format!("{:.0}", mib * 1024.0 * 1024.0 / apps as f64);
    for (i, p) in points.iter().enumerate() {
        let growth = p.rss - base;
        let per_app = if p.apps > 0 {
            bytes_per_app(growth, p.apps)
        } else {
            String::new()
        };
        let marginal = match i.checked_sub(1).map(|j| &points[j]) {
            Some(prev) if p.apps > prev.apps => bytes_per_app(p.rss - prev.rss, p.apps - prev.apps),
            _ => String::new(),
        };
        lines.push(format!(
            "| {} | {:.1} | {:.1} | {per_app} | {marginal} | {:.1} |",
            p.label, p.rss, growth, p.peak
        ));
    }
    let large: Vec<&Point> = points.iter().filter(|p| p.apps >= 10_000).collect();
    if !large.is_empty() {
        lines.push(String::new());
        lines.push("| target: growth <= 50 MiB for 10k apps | growth MiB | met |".into());
        lines.push("|---|---:|---|".into());
        for p in large {
            let growth = p.rss - base;
            lines.push(format!(
                "| {} | {growth:.1} | {} |",
                p.label,
                if growth <= 50.0 { "yes" } else { "no" }
            ));
        }
    }
    lines.join("\n")
}
