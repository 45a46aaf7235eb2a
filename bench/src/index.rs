//! `m2m-bench index`: the in-memory parts at scale, without an API server: the caches filled with
//! `N` apps as the watches would fill them (objects shaped as the API server sends them, then
//! stripped as the operator strips them), the token endpoint's lookups over them, and the
//! controller's memo. Prints what each structure costs per app (resident memory growth while it
//! is filled) and what a lookup costs at that size, to check the extrapolation of the 1k/10k
//! cluster runs to 100k.

use std::{path::PathBuf, time::Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    core::PartialObjectMeta,
    runtime::{reflector::ObjectRef, watcher},
};
use m2m_operator::{
    api::{M2MApp, Organization},
    cache::{Cache, strip},
    credentials::{
        generate::{ClientSecret, client_id},
        hash,
        record::{AppKey, ClientRecord, SecretKind},
    },
    token::clients,
};
use m2m_operator_testkit::world::uid;
use serde_json::{Value, json};

use crate::{
    procfs,
    report::{date, machine, write_section},
};

pub struct Options {
    pub apps: usize,
    pub apps_per_org: usize,
    pub write: PathBuf,
}

const NS: &str = "m2m-system";

/// An M2MApp as the API server sends it: managed fields, the last-applied annotation, a status.
fn app_json(n: usize, org: usize) -> Value {
    let id = uid(n as u64);
    json!({
        "apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
        "metadata": {
            "name": format!("app-{n:06}"), "namespace": format!("tenant-{org:05}"), "uid": id,
            "resourceVersion": format!("{}", 1000 + n), "generation": 1,
            "creationTimestamp": "2026-12-01T00:00:00Z",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"m2m.dev/v1alpha1\",\"kind\":\"M2MApp\",\"metadata\":{\"name\":\"x\"},\"spec\":{\"audiences\":[\"https://api.example.com\"]}}"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "m2m.dev/v1alpha1",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:audiences": {}, "f:scopes": {}, "f:organizationRef": {"f:name": {}}}}},
                {"manager": "m2m-operator", "operation": "Apply", "apiVersion": "m2m.dev/v1alpha1", "subresource": "status",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:clientId": {}, "f:conditions": {}, "f:rotation": {}}}}],
        },
        "spec": {
            "organizationRef": {"name": format!("org-{org:05}")},
            "displayName": "An agent of the benchmark",
            "scopes": ["read:users", "write:flags"],
            "audiences": ["https://api.example.com"],
            "tokenLifetime": "1h",
        },
        "status": {
            "clientId": client_id(&id), "secretName": format!("app-{n:06}-credentials"),
            "organizationCode": format!("org_{org:05}"), "scopes": ["read:users", "write:flags"],
            "rotation": {"revision": 1, "lastRotationTime": "2026-12-01T00:00:00Z"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "CredentialsIssued",
                "message": format!("client credentials are in Secret \"app-{n:06}-credentials\" (revision 1)"),
                "observedGeneration": 1, "lastTransitionTime": "2026-12-01T00:00:00Z"}],
            "observedGeneration": 1,
            "verifiedSecret": format!("{id}/{}/current/0123456789abcdef", 2000 + n),
        },
    })
}

/// A client record's Secret as the API server sends it.
fn record_secret(n: usize, org: usize, phc: &str) -> Secret {
    let id = uid(n as u64);
    let record: ClientRecord = serde_json::from_value(json!({
        "clientId": client_id(&id),
        "app": AppKey { namespace: format!("tenant-{org:05}"), name: format!("app-{n:06}"), uid: id.clone() },
        "current": phc, "revision": 1, "lastRotationTime": "2026-12-01T00:00:00Z",
        "organizationUid": format!("org-uid-{org}"),
    }))
    .expect("record");
    let mut secret = record.to_secret(NS).expect("record Secret");
    secret.metadata.uid = Some(format!("rec-{id}"));
    secret.metadata.resource_version = Some(format!("{}", 3000 + n));
    secret.metadata.managed_fields = Some(vec![Default::default()]);
    secret
}

/// A tenant Secret's metadata as the metadata watch sends it.
fn tenant_secret(n: usize, org: usize) -> PartialObjectMeta<Secret> {
    let id = uid(n as u64);
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": format!("app-{n:06}-credentials"), "namespace": format!("tenant-{org:05}"),
            "uid": format!("sec-{id}"), "resourceVersion": format!("{}", 2000 + n),
            "labels": {"app.kubernetes.io/managed-by": "m2m-operator", "m2m.dev/app": format!("app-{n:06}")},
            "annotations": {"m2m.dev/revision": "1"},
            "ownerReferences": [{"apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp", "name": format!("app-{n:06}"),
                "uid": id, "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "m2m-operator", "operation": "Apply"}],
        }
    }))
    .expect("tenant Secret metadata")
}

fn rss_kib() -> f64 {
    procfs::rss_mib(std::process::id()).unwrap_or(f64::NAN) * 1024.0
}

/// Fills the caches with `apps` apps; prints and records the cost of each structure.
///
/// Long on purpose: one measured sequence whose steps share the timed window and the processes under test.
pub fn run(opts: Options) {
    let n = opts.apps;
    let orgs = n.div_ceil(opts.apps_per_org.max(1));
    let phc = hash::hash(&ClientSecret::new("m2msec_index")).expect("hash");
    let phc = phc.as_str().to_owned();
    let (cache, mut w) = Cache::detached();
    let mut rows: Vec<(String, f64)> = Vec::new();
    let mut measure = |what: &str, before: f64| {
        let after = rss_kib();
        rows.push((what.to_owned(), (after - before) * 1024.0 / n as f64));
        after
    };
    let base = rss_kib();
    let mut at = base;
    for org in 0..orgs {
        let o: Organization = serde_json::from_value(json!({
            "apiVersion": "m2m.dev/v1alpha1", "kind": "Organization",
            "metadata": {"name": format!("org-{org:05}"), "uid": format!("org-uid-{org}"),
                "resourceVersion": "1", "creationTimestamp": "2026-12-01T00:00:00Z"},
            "spec": {"code": format!("org_{org:05}"), "namespaces": [format!("tenant-{org:05}")]},
            "status": {"code": format!("org_{org:05}"), "apps": opts.apps_per_org}
        }))
        .expect("org");
        let mut o = o;
        strip::organization(&mut o);
        w.organizations
            .apply_watcher_event(&watcher::Event::Apply(o));
        let ns: PartialObjectMeta<Namespace> = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": format!("tenant-{org:05}"), "uid": format!("ns-{org}"),
                "labels": {"kubernetes.io/metadata.name": format!("tenant-{org:05}")}}
        }))
        .expect("namespace");
        let mut ns = ns;
        strip::namespace(&mut ns);
        w.namespaces.apply_watcher_event(&watcher::Event::Apply(ns));
    }
    cache.org_codes.changed();
    at = measure("Organizations and Namespaces (per app)", at);
    for i in 0..n {
        let mut app: M2MApp =
            serde_json::from_value(app_json(i, i / opts.apps_per_org.max(1))).expect("app");
        strip::app(&mut app);
        w.apps.apply_watcher_event(&watcher::Event::Apply(app));
    }
    at = measure("M2MApps (stripped)", at);
    for i in 0..n {
        let s = record_secret(i, i / opts.apps_per_org.max(1), &phc);
        w.records.apply(watcher::Event::Apply(s));
    }
    at = measure("client records (parsed, with their metadata)", at);
    for i in 0..n {
        let mut s = tenant_secret(i, i / opts.apps_per_org.max(1));
        strip::tenant_secret(&mut s);
        w.tenant_secrets
            .apply_watcher_event(&watcher::Event::Apply(s));
    }
    at = measure("tenant Secrets (name and namespace)", at);
    // The token endpoint: one lookup and standing per client (the records are parsed already).
    let global = m2m_operator::tenancy::GlobalApps::only(NS);
    let started = Instant::now();
    let mut allowed = 0;
    for i in 0..n {
        let id = client_id(&uid(i as u64));
        if let Some(client) = clients::lookup(&cache, &id)
            && matches!(
                clients::standing(&cache, &client, &global),
                clients::Standing::Allowed(_)
            )
        {
            allowed += 1;
        }
    }
    let first_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    at = measure("token endpoint, after every client's first request", at);
    let started = Instant::now();
    for i in 0..n {
        let id = client_id(&uid(i as u64));
        let client = clients::lookup(&cache, &id).expect("known client");
        let _ = clients::standing(&cache, &client, &global);
    }
    let later_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    assert_eq!(allowed, n, "every client is allowed");
    // The controller's verified-Secret memo.
    let memo = m2m_operator::controller::verified::VerifiedSecrets::default();
    let hash_value = ClientRecord::from_secret(&record_secret(0, 0, &phc))
        .expect("record")
        .current
        .expect("a current hash");
    for i in 0..n {
        let mut s = Secret::default();
        s.metadata.uid = Some(format!("sec-{}", uid(i as u64)));
        s.metadata.resource_version = Some(format!("{}", 2000 + i));
        memo.remember(&uid(i as u64), &s, &hash_value, SecretKind::Current);
    }
    let _ = measure("verified-Secret memo (leader)", at);
    let total = (rss_kib() - base) * 1024.0 / n as f64;
    // Keep everything alive until measured.
    assert!(
        cache
            .apps
            .get(&ObjectRef::new("app-000000").within("tenant-00000"))
            .is_some()
    );
    drop(w);

    let mut lines = vec![
        format!("### In-memory parts at {n} apps ({orgs} Organizations and Namespaces)\n"),
        format!(
            "{}, {}. Command: `hack/bench.sh index --apps {n}`: no API server; the caches filled as the watches fill them (objects shaped as the API server sends them, stripped as the operator strips them), resident memory (`VmRSS`) read after each structure.\n",
            date(),
            machine()
        ),
        "| structure | bytes per app |".into(),
        "|---|---:|".into(),
    ];
    for (what, bytes) in &rows {
        lines.push(format!("| {what} | {bytes:.0} |"));
    }
    lines.push(format!("| **all of the above** | **{total:.0}** |"));
    lines.push(String::new());
    lines.push(format!(
        "Token lookup + standing per request: {first_us:.2} µs on a client's first request, {later_us:.2} µs later."
    ));
    let table = lines.join("\n");
    println!("{table}");
    write_section(&opts.write, &format!("index-{n}"), &table);
}
