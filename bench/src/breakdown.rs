//! Where a run's time went, computed from two snapshots (CPU seconds per process, the API
//! server's request counters, the operator's metrics). Pure: the scenarios take the snapshots.

use std::collections::BTreeMap;

use crate::promtext::{self, Sample};

/// CPU seconds per process between two readings (same order, same names).
pub fn cpu_delta(
    before: &[(&'static str, f64)],
    after: &[(&'static str, f64)],
) -> Vec<(&'static str, f64)> {
    after
        .iter()
        .map(|(name, a)| {
            let b = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0.0, |(_, b)| *b);
            (*name, a - b)
        })
        .collect()
}

/// Resources whose requests the reconcile table lists.
pub const RESOURCES: [&str; 6] = [
    "m2mapps",
    "organizations",
    "secrets",
    "events",
    "leases",
    "namespaces",
];

/// A row of the request table: `VERB resource[/subresource]` and its count in the window.
pub fn api_requests(before: &[Sample], after: &[Sample]) -> Vec<(String, f64)> {
    let keys = ["verb", "resource", "subresource"];
    let d = promtext::delta(
        &promtext::by_labels(before, "apiserver_request_total", &keys),
        &promtext::by_labels(after, "apiserver_request_total", &keys),
    );
    let mut rows: Vec<(String, f64)> = d
        .into_iter()
        .filter(|(k, _)| RESOURCES.contains(&k[1].as_str()) && k[0] != "WATCH")
        .map(|(k, v)| {
            let resource = if k[2].is_empty() {
                k[1].clone()
            } else {
                format!("{}/{}", k[1], k[2])
            };
            (format!("{} {resource}", k[0]), v)
        })
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    rows
}

/// Counter deltas of the operator's metrics that the tables report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OperatorWork {
    pub app_reconciles: f64,
    pub app_reconcile_errors: BTreeMap<String, f64>,
    pub app_reconcile_seconds: f64,
    pub org_reconciles: f64,
    pub argon2_hashes: f64,
    pub argon2_hash_seconds: f64,
    pub argon2_verifies: f64,
    pub argon2_verify_seconds: f64,
}

pub fn operator_work(before: &[Sample], after: &[Sample]) -> OperatorWork {
    let d = |name: &str, filter: &[(&str, &str)]| {
        promtext::sum(after, name, filter) - promtext::sum(before, name, filter)
    };
    let errors = promtext::delta(
        &promtext::by_labels(before, "m2m_reconciles_total", &["kind", "result"]),
        &promtext::by_labels(after, "m2m_reconciles_total", &["kind", "result"]),
    )
    .into_iter()
    .filter(|(k, _)| k[0] == "M2MApp" && k[1] != "success")
    .map(|(k, v)| (k[1].clone(), v))
    .collect();
    let argon2 = "m2m_controller_argon2_duration_seconds";
    OperatorWork {
        app_reconciles: d("m2m_reconciles_total", &[("kind", "M2MApp")]),
        app_reconcile_errors: errors,
        app_reconcile_seconds: d("m2m_reconcile_duration_seconds_sum", &[("kind", "M2MApp")]),
        org_reconciles: d("m2m_reconciles_total", &[("kind", "Organization")]),
        argon2_hashes: d(&format!("{argon2}_count"), &[("op", "hash")]),
        argon2_hash_seconds: d(&format!("{argon2}_sum"), &[("op", "hash")]),
        argon2_verifies: d(&format!("{argon2}_count"), &[("op", "verify")]),
        argon2_verify_seconds: d(&format!("{argon2}_sum"), &[("op", "verify")]),
    }
}

impl OperatorWork {
    pub fn argon2_ops(&self) -> f64 {
        self.argon2_hashes + self.argon2_verifies
    }
}

/// The operator run's wall time if its argon2id CPU time were gone and the run stayed
/// CPU-bound: the remaining CPU work spread over the cores, never less than `floor` (what the
/// plain client needed for the same writes).
pub fn wall_without(wall: f64, removed_cpu: f64, cores: f64, floor: f64) -> f64 {
    (wall - removed_cpu / cores).max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_deltas_by_name() {
        let d = cpu_delta(&[("a", 1.0), ("b", 2.0)], &[("a", 4.0), ("b", 2.5)]);
        assert_eq!(d, vec![("a", 3.0), ("b", 0.5)]);
    }

    #[test]
    fn request_rows_skip_watches_and_other_resources() {
        let before = promtext::parse(
            "apiserver_request_total{verb=\"POST\",resource=\"secrets\",subresource=\"\",code=\"201\"} 1\n",
        );
        let after = promtext::parse(concat!(
            "apiserver_request_total{verb=\"POST\",resource=\"secrets\",subresource=\"\",code=\"201\"} 11\n",
            "apiserver_request_total{verb=\"POST\",resource=\"secrets\",subresource=\"\",code=\"409\"} 2\n",
            "apiserver_request_total{verb=\"PATCH\",resource=\"m2mapps\",subresource=\"status\",code=\"200\"} 5\n",
            "apiserver_request_total{verb=\"WATCH\",resource=\"secrets\",subresource=\"\",code=\"200\"} 3\n",
            "apiserver_request_total{verb=\"GET\",resource=\"configmaps\",subresource=\"\",code=\"200\"} 3\n",
        ));
        assert_eq!(
            api_requests(&before, &after),
            vec![
                ("POST secrets".to_owned(), 12.0),
                ("PATCH m2mapps/status".to_owned(), 5.0)
            ]
        );
    }

    #[test]
    fn operator_counters() {
        let before =
            promtext::parse("m2m_reconciles_total{kind=\"M2MApp\",result=\"success\"} 2\n");
        let after = promtext::parse(concat!(
            "m2m_reconciles_total{kind=\"M2MApp\",result=\"success\"} 12\n",
            "m2m_reconciles_total{kind=\"M2MApp\",result=\"api_conflict\"} 1\n",
            "m2m_controller_argon2_duration_seconds_count{op=\"hash\"} 10\n",
            "m2m_controller_argon2_duration_seconds_sum{op=\"hash\"} 0.3\n",
        ));
        let w = operator_work(&before, &after);
        assert_eq!(w.app_reconciles, 11.0);
        assert_eq!(w.app_reconcile_errors["api_conflict"], 1.0);
        assert_eq!(w.argon2_ops(), 10.0);
    }

    #[test]
    fn estimate_without_removed_cpu() {
        assert_eq!(wall_without(20.0, 30.0, 2.0, 1.0), 5.0);
        assert_eq!(wall_without(20.0, 40.0, 2.0, 3.0), 3.0);
    }
}
