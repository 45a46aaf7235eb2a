//! `m2m-bench propagation`: how long after an API write the token endpoint acts on it. Each
//! trial takes the time before the write is sent, then polls the endpoint (one request per
//! connection, every 2 ms) with credentials that worked until the first answer that reflects
//! the write.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use m2m_operator::api::{M2MApp, Organization, names::ANNOTATION_ROTATE};
use serde_json::json;

use crate::{
    cluster::{self, Operator},
    fixtures::{self, ReadyWatch, Tenants},
    http,
    report::{date, machine, write_section},
    stats::{self, Summary},
};

pub struct Options {
    pub trials: usize,
    pub write: PathBuf,
}

const POLL_EVERY: Duration = Duration::from_millis(2);
const GIVE_UP: Duration = Duration::from_secs(30);

/// Polls until the endpoint answers something other than `from`; returns that status and
/// when it arrived.
fn poll_until_not(addr: SocketAddr, auth: &str, from: u16) -> (u16, Instant) {
    let deadline = Instant::now() + GIVE_UP;
    loop {
        let status = http::token_status(addr, auth).unwrap_or(0);
        if status != from {
            return (status, Instant::now());
        }
        assert!(Instant::now() < deadline, "no change within {GIVE_UP:?}");
        std::thread::sleep(POLL_EVERY);
    }
}

/// One trial: the time from just before `write` is sent until the endpoint stops answering
/// `from`, which must then answer `to`.
async fn trial<F: std::future::Future<Output = ()>>(
    addr: SocketAddr,
    auth: &str,
    from: u16,
    to: u16,
    write: F,
) -> Duration {
    let auth = auth.to_owned();
    let t0 = Instant::now();
    let poller = tokio::task::spawn_blocking(move || poll_until_not(addr, &auth, from));
    write.await;
    let (status, at) = poller.await.unwrap();
    assert_eq!(status, to, "the endpoint answered {status}, expected {to}");
    at.duration_since(t0)
}

/// Long on purpose: one measured sequence whose steps share the timed window and the processes under test.
pub async fn run(opts: Options) {
    let n = opts.trials;
    let client = cluster::client().await;
    cluster::prepare(&client).await;
    // The trials make a few hundred refused requests from one address: no throttling here.
    let mut operator = Operator::spawn(
        "propagation",
        &[
            ("M2M_MAX_FAILURES_PER_CLIENT", "1000000"),
            ("M2M_MAX_FAILURES_PER_SOURCE", "1000000"),
        ],
    );
    operator.wait_ready(Duration::from_secs(60)).await;
    let addr = operator.token;

    // Org 0 of "prop": apps 0..n are rotated (grace period 0s, so the old secret stops at
    // once), apps n..2n deleted. Org 0 of "propsus": one app, the org is suspended and resumed.
    let mut apps = Tenants::new("prop", 2 * n);
    apps.grace_period = Some("0s".into());
    let suspended = Tenants::new("propsus", 1);
    for t in [&apps, &suspended] {
        let watch = ReadyWatch::start(&client, &t.selector()).await;
        t.create_orgs(&client, 0..1, 4).await;
        t.create_apps(&client, 0..1, 16).await;
        watch.wait(t.apps_per_org, Duration::from_secs(300)).await;
    }
    let ns = apps.namespace(0);
    let mut auths = Vec::new();
    for k in 0..2 * n {
        auths.push(
            fixtures::basic_auth(&client, &ns, &format!("{}-credentials", apps.app(k))).await,
        );
    }
    let sus_auth = fixtures::basic_auth(
        &client,
        &suspended.namespace(0),
        &format!("{}-credentials", suspended.app(0)),
    )
    .await;
    // Each client's first request pays argon2id once; the trials start from the fast path.
    for auth in auths.iter().chain([&sus_auth]) {
        let status = {
            let auth = auth.clone();
            tokio::task::spawn_blocking(move || http::token_status(addr, &auth))
                .await
                .unwrap()
                .unwrap()
        };
        assert_eq!(status, 200, "warm-up token request");
    }

    let app_api: Api<M2MApp> = Api::namespaced(client.clone(), &ns);
    let org_api: Api<Organization> = Api::all(client.clone());
    let mut rotation = Vec::new();
    for (k, auth) in auths.iter().enumerate().take(n) {
        let name = apps.app(k);
        let patch = json!({"metadata": {"annotations": {ANNOTATION_ROTATE: format!("trial-{k}")}}});
        let write = async {
            app_api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("annotate");
        };
        rotation.push(trial(addr, auth, 200, 401, write).await);
    }
    eprintln!("[propagation] rotation done");
    let (mut suspend, mut resume) = (Vec::new(), Vec::new());
    let org = suspended.org(0);
    for _ in 0..n {
        let set = |value: bool| {
            let (api, org) = (org_api.clone(), org.clone());
            async move {
                api.patch(
                    &org,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"suspended": value}})),
                )
                .await
                .expect("patch Organization");
            }
        };
        suspend.push(trial(addr, &sus_auth, 200, 400, set(true)).await);
        resume.push(trial(addr, &sus_auth, 400, 200, set(false)).await);
    }
    eprintln!("[propagation] suspension done");
    let mut deletion = Vec::new();
    for (k, auth) in auths.iter().enumerate().skip(n) {
        let name = apps.app(k);
        let write = async {
            app_api
                .delete(&name, &DeleteParams::default())
                .await
                .expect("delete");
        };
        deletion.push(trial(addr, auth, 200, 401, write).await);
    }
    apps.delete(&client, None).await;
    suspended.delete(&client, None).await;
    operator.stop();

    let rows = [
        (
            "`m2m.dev/rotate` annotation (gracePeriod 0s)",
            "the old secret is refused (401)",
            stats::summarize(&rotation),
        ),
        (
            "Organization `spec.suspended: true`",
            "the app's token request is refused (400 unauthorized_client)",
            stats::summarize(&suspend),
        ),
        (
            "Organization `spec.suspended: false`",
            "tokens are issued again (200)",
            stats::summarize(&resume),
        ),
        (
            "M2MApp deleted",
            "its client is unknown (401)",
            stats::summarize(&deletion),
        ),
    ];
    let table = render(n, &rows);
    println!("{table}");
    write_section(&opts.write, "propagation", &table);
}

fn render(trials: usize, rows: &[(&str, &str, Summary)]) -> String {
    let mut lines = vec![
        "### Propagation: API write to the token endpoint acting on it\n".to_owned(),
        format!(
            "{}, {}. Command: `hack/bench.sh propagation --trials {trials}` (a control plane of its own; {trials} trials per write; the clock starts before the write is sent and stops when the first answer reflecting it arrives; the endpoint is polled every {} ms with one request per connection).\n",
            date(),
            machine(),
            POLL_EVERY.as_millis()
        ),
        "| API write | the endpoint | p50 ms | p99 ms | max ms | p99 < 1 s |".into(),
        "|---|---|---:|---:|---:|---|".into(),
    ];
    for (write, effect, s) in rows {
        lines.push(format!(
            "| {write} | {effect} | {:.0} | {:.0} | {:.0} | {} |",
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            if s.p99_ms < 1000.0 { "yes" } else { "no" }
        ));
    }
    lines.join("\n")
}
