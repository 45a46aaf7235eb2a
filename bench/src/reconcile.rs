//! `m2m-bench reconcile`: N M2MApps across M Organizations created at once, time until all are
//! Ready, next to a plain client doing the equivalent writes itself (create the app, create its
//! Secret, patch its status) in the same run; and where the operator's time went.

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use m2m_operator::{
    api::M2MApp,
    controller::app::status::{self as app_status, StatusInputs},
    credentials::{
        generate::{self, ClientSecret},
        hash::{self, PhcHash},
        record::{AppKey, ClientRecord},
        secret::{self as tenant_secret, Endpoints, SecretContent},
    },
    tenancy::Grant,
};
use serde_json::json;

use crate::{
    breakdown::{self, OperatorWork},
    cluster::{self, ISSUER, MANAGER, Operator},
    fixtures::{ReadyWatch, Tenants},
    promtext::Sample,
    report::write_section,
    stats::{self, Summary},
};

mod report;
use report::render;

pub struct Options {
    pub apps: usize,
    pub orgs: usize,
    pub concurrency: usize,
    pub write: PathBuf,
}

/// What is read before and after a timed window.
struct Snapshot {
    at: Instant,
    cpu: Vec<(&'static str, f64)>,
    api: Vec<Sample>,
    operator: Vec<Sample>,
}

async fn snapshot(client: &Client, operator: Option<&Operator>) -> Snapshot {
    let operator_metrics = match operator {
        Some(op) => op.metrics().await,
        None => Vec::new(),
    };
    Snapshot {
        at: Instant::now(),
        cpu: cluster::cpu_by_process(operator),
        api: cluster::apiserver_metrics(client).await,
        operator: operator_metrics,
    }
}

/// One timed run.
struct Run {
    wall: f64,
    latency: Summary,
    cpu: Vec<(&'static str, f64)>,
    requests: Vec<(String, f64)>,
    work: OperatorWork,
}

fn finish(
    before: &Snapshot,
    last_ready: Instant,
    after: &Snapshot,
    created: &HashMap<String, Instant>,
    ready: &HashMap<String, Instant>,
) -> Run {
    let latencies: Vec<Duration> = created
        .iter()
        .filter_map(|(k, c)| ready.get(k).map(|r| r.saturating_duration_since(*c)))
        .collect();
    Run {
        wall: last_ready.duration_since(before.at).as_secs_f64(),
        latency: stats::summarize(&latencies),
        cpu: breakdown::cpu_delta(&before.cpu, &after.cpu),
        requests: breakdown::api_requests(&before.api, &after.api),
        work: breakdown::operator_work(&before.operator, &after.operator),
    }
}

/// CPU milliseconds of one argon2id computation with the operator's parameters on this
/// machine: one thread per core hashing at once (as the operator's pool of one slot per core
/// does, sharing the memory bandwidth), nothing else running; the median of 8 per thread.
pub fn calibrate_argon2() -> f64 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut ms: Vec<f64> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..cores)
            .map(|_| {
                s.spawn(|| {
                    let secret = ClientSecret::new("m2msec_calibration-0000000000000000000000");
                    (0..8)
                        .map(|_| {
                            let t = Instant::now();
                            let _ = hash::hash(&secret).expect("hash");
                            t.elapsed().as_secs_f64() * 1e3
                        })
                        .collect::<Vec<f64>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("calibration thread"))
            .collect()
    });
    ms.sort_by(f64::total_cmp);
    stats::percentile(&ms, 0.5)
}

fn ready_timeout(apps: usize) -> Duration {
    Duration::from_secs(120).max(Duration::from_millis(300) * apps as u32)
}

pub async fn run(opts: Options) {
    assert!(
        opts.orgs > 0 && opts.apps.is_multiple_of(opts.orgs),
        "--apps must be a multiple of --orgs"
    );
    let per_org = opts.apps / opts.orgs;
    let client = cluster::client().await;
    cluster::prepare(&client).await;
    let argon2_ms = calibrate_argon2();
    eprintln!("[reconcile] argon2id: {argon2_ms:.1} ms per computation");

    // The plain client first, with no operator running (it would act on these apps too);
    // everything it made is deleted before the operator starts.
    let raw_tenants = Tenants::new("raw", per_org);
    raw_tenants
        .create_orgs(&client, 0..opts.orgs, opts.concurrency)
        .await;
    let phc = hash::hash(&ClientSecret::new(
        "m2msec_raw-baseline-000000000000000000000",
    ))
    .expect("hash");
    let watch = ReadyWatch::start(&client, &raw_tenants.selector()).await;
    eprintln!("[reconcile] plain client: {} apps", opts.apps);
    let before = snapshot(&client, None).await;
    let created = raw_writes(&client, &raw_tenants, opts.orgs, opts.concurrency, &phc).await;
    let last = watch.wait(opts.apps, ready_timeout(opts.apps)).await;
    let after = snapshot(&client, None).await;
    let raw = finish(&before, last, &after, &created, &watch.times());
    drop(watch);
    raw_tenants
        .delete(&client, Some(Duration::from_secs(600)))
        .await;

    let mut operator = Operator::spawn("reconcile", &[]);
    operator.wait_ready(Duration::from_secs(60)).await;
    let tenants = Tenants::new("rc", per_org);
    tenants
        .create_orgs(&client, 0..opts.orgs, opts.concurrency)
        .await;
    tenants
        .wait_orgs_ready(&client, opts.orgs, Duration::from_secs(120))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let watch = ReadyWatch::start(&client, &tenants.selector()).await;
    eprintln!("[reconcile] operator: {} apps", opts.apps);
    let before = snapshot(&client, Some(&operator)).await;
    let created = tenants
        .create_apps(&client, 0..opts.orgs, opts.concurrency)
        .await;
    let last = watch.wait(opts.apps, ready_timeout(opts.apps)).await;
    let after = snapshot(&client, Some(&operator)).await;
    let op = finish(&before, last, &after, &created, &watch.times());
    drop(watch);
    tenants.delete(&client, None).await;
    operator.stop();

    let table = render(&opts, argon2_ms, &raw, &op);
    println!("{table}");
    write_section(&opts.write, &format!("reconcile-{}", opts.apps), &table);
}

/// What the operator writes for one app, written directly: the app, its Secret (with the same
/// content and owner), its status (the operator's own status function).
///
/// Long on purpose: one measured sequence whose steps share the timed window and the processes under test.
async fn raw_writes(
    client: &Client,
    tenants: &Tenants,
    orgs: usize,
    concurrency: usize,
    phc: &PhcHash,
) -> HashMap<String, Instant> {
    let endpoints = Endpoints {
        issuer: ISSUER.to_owned(),
        token_url: format!("{ISSUER}/oauth2/token"),
    };
    stream::iter(tenants.app_keys(0..orgs))
        .map(|(o, k)| {
            let ns = tenants.namespace(o);
            let apps: Api<M2MApp> = Api::namespaced(client.clone(), &ns);
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
            let object = tenants.app_object(o, k);
            let code = format!("{}_{o}", tenants.prefix);
            let endpoints = &endpoints;
            async move {
                let app = apps
                    .create(&PostParams::default(), &object)
                    .await
                    .expect("create M2MApp");
                let uid = app.metadata.uid.clone().expect("uid");
                let now = Timestamp::now();
                let record = ClientRecord {
                    client_id: generate::client_id(&uid),
                    app: AppKey {
                        namespace: ns.clone(),
                        name: app.name_any(),
                        uid,
                    },
                    current: Some(phc.clone()),
                    pending: None,
                    previous: None,
                    revision: 1,
                    last_rotation_time: now,
                    handled_rotate_request: None,
                    handled_revoke_request: None,
                    organization_uid: None,
                };
                let grant = Grant {
                    org_code: Some(code),
                    scopes: vec!["read".into()],
                };
                let secret = tenant_secret::render(
                    &app,
                    Some(&generate::client_secret().expect("random")),
                    &SecretContent {
                        client_id: &record.client_id,
                        org_code: grant.org_code.as_deref(),
                        scopes: &grant.scopes,
                        revision: 1,
                        endpoints,
                    },
                )
                .expect("render");
                let params = PostParams {
                    field_manager: Some(MANAGER.to_owned()),
                    ..PostParams::default()
                };
                secrets
                    .create(&params, &secret)
                    .await
                    .expect("create Secret");
                let status = app_status::status(&StatusInputs {
                    app: &app,
                    grant: &Ok(grant),
                    block: None,
                    record: Some(&record),
                    conflict: false,
                    now,
                    verified_secret: None,
                    write_failure: None,
                    template_refused: &[],
                    quota_reported: None,
                    previous_reported: None,
                });
                let patch =
                    json!({"apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp", "status": status});
                apps.patch_status(
                    &app.name_any(),
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
                .expect("patch status");
                (format!("{ns}/{}", app.name_any()), Instant::now())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}
