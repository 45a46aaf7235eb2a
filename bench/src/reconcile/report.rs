//! The reconcile scenario's tables.

use super::{Options, Run, breakdown};
use crate::report::{date, machine};

pub(super) fn render(opts: &Options, argon2_ms: f64, raw: &Run, op: &Run) -> String {
    let apps = opts.apps as f64;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    let argon2_cpu = op.work.argon2_ops() * argon2_ms / 1e3;
    let ratio = raw.wall / op.wall;
    let without = breakdown::wall_without(op.wall, argon2_cpu, cores, raw.wall);
    let row = |name: &str, r: &Run| {
        format!(
            "| {name} | {:.1} | {:.0} | {:.0} | {:.0} |",
            r.wall,
            apps / r.wall,
            r.latency.p50_ms,
            r.latency.p99_ms
        )
    };
    let mut lines = vec![
        format!(
            "### Reconcile throughput: {} M2MApps across {} Organizations\n",
            opts.apps, opts.orgs
        ),
        format!(
            "{}, {}. Command: `hack/bench.sh reconcile --apps {} --orgs {} --concurrency {}` (a control plane of its own; both runs create the apps with {} requests in flight; argon2id on this machine: {argon2_ms:.1} ms of CPU per computation, measured with one thread per core hashing at once).\n",
            date(),
            machine(),
            opts.apps,
            opts.orgs,
            opts.concurrency,
            opts.concurrency
        ),
        "| run | until all Ready, s | apps/s | create to Ready p50 ms | p99 ms |".into(),
        "|---|---:|---:|---:|---:|".into(),
        row("plain client: create app, create Secret, patch status", raw),
        row("operator: create apps; the operator issues credentials", op),
        String::new(),
        "| ratio | value | target |".into(),
        "|---|---:|---|".into(),
        format!("| operator rate / plain client rate | {ratio:.2} | >= 0.5 |"),
        format!(
            "| the same without the operator's argon2id CPU time (estimate: {:.1} s instead of {:.1} s) | {:.2} | |",
            without,
            op.wall,
            raw.wall / without
        ),
        String::new(),
        "Where the time went (CPU seconds in each run's window; the cores can give 2 x wall):\n"
            .into(),
        "| process | plain client run | operator run |".into(),
        "|---|---:|---:|".into(),
    ];
    lines.extend(cpu_rows(argon2_ms, argon2_cpu, cores, raw, op));
    lines.extend(per_app_rows(apps, argon2_ms, raw, op));
    lines.join("\n")
}

/// Where the CPU time went, per process, in both runs.
fn cpu_rows(argon2_ms: f64, argon2_cpu: f64, cores: f64, raw: &Run, op: &Run) -> Vec<String> {
    let mut lines = Vec::new();
    let cpu_of = |r: &Run, name: &str| {
        r.cpu
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |(_, s)| *s)
    };
    let operator_cpu = cpu_of(op, "m2m-operator");
    lines.push(format!(
        "| m2m-operator: argon2id ({:.0} hashes + {:.0} verifications x {argon2_ms:.1} ms) | | {argon2_cpu:.1} |",
        op.work.argon2_hashes, op.work.argon2_verifies
    ));
    lines.push(format!(
        "| m2m-operator: everything else | | {:.1} |",
        operator_cpu - argon2_cpu
    ));
    let mut used = (0.0, operator_cpu);
    for (name, _) in &op.cpu {
        if *name == "m2m-operator" {
            continue;
        }
        let (r, o) = (cpu_of(raw, name), cpu_of(op, name));
        used.0 += r;
        used.1 += o;
        lines.push(format!("| {name} | {r:.1} | {o:.1} |"));
    }
    lines.push(format!(
        "| idle | {:.1} | {:.1} |",
        cores * raw.wall - used.0,
        cores * op.wall - used.1
    ));
    lines.push(format!(
        "| total ({cores:.0} cores x wall) | {:.1} | {:.1} |",
        cores * raw.wall,
        cores * op.wall
    ));
    lines
}

/// API requests and operator work per app, in both runs.
fn per_app_rows(apps: f64, argon2_ms: f64, raw: &Run, op: &Run) -> Vec<String> {
    let mut lines = vec![
        String::new(),
        "Requests and work per app (from the API server's and the operator's /metrics):\n".into(),
        "| what | plain client run | operator run |".into(),
        "|---|---:|---:|".into(),
    ];
    let per = |v: f64| format!("{:.2}", v / apps);
    let find = |r: &Run, key: &str| {
        r.requests
            .iter()
            .find(|(k, _)| k == key)
            .map_or(0.0, |(_, v)| *v)
    };
    let mut keys: Vec<&String> = op.requests.iter().map(|(k, _)| k).collect();
    for (k, _) in &raw.requests {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let (mut raw_total, mut op_total) = (0.0, 0.0);
    for key in keys {
        let (r, o) = (find(raw, key), find(op, key));
        raw_total += r;
        op_total += o;
        lines.push(format!("| API: {key} | {} | {} |", per(r), per(o)));
    }
    lines.push(format!(
        "| API: all of the above | {} | {} |",
        per(raw_total),
        per(op_total)
    ));
    let w = &op.work;
    lines.push(format!(
        "| M2MApp reconciles | | {} |",
        per(w.app_reconciles)
    ));
    for (category, n) in &w.app_reconcile_errors {
        lines.push(format!(
            "| M2MApp reconciles failed: {category} | | {} |",
            per(*n)
        ));
    }
    lines.push(format!(
        "| Organization reconciles | | {} |",
        per(w.org_reconciles)
    ));
    lines.push(format!(
        "| argon2id hashes / verifications | | {} / {} |",
        per(w.argon2_hashes),
        per(w.argon2_verifies)
    ));
    lines.push(format!(
        "| argon2id wall time on the blocking pool, ms per computation (CPU time: {argon2_ms:.1}) | | {:.1} |",
        1e3 * (w.argon2_hash_seconds + w.argon2_verify_seconds) / w.argon2_ops().max(1.0)
    ));
    lines.push(format!(
        "| M2MApp reconcile duration, mean ms | | {:.1} |",
        1e3 * w.app_reconcile_seconds / w.app_reconciles.max(1.0)
    ));
    lines.push(format!(
        "| reconcile workers busy (of 16, mean over the window) | | {:.1} |",
        w.app_reconcile_seconds / op.wall
    ));
    lines
}
