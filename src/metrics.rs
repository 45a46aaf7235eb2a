//! Prometheus metrics (prefix `m2m_`), registered once and shared by every component.

use std::collections::BTreeMap;

use kube::runtime::reflector::Store;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::ConstGauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::api::{M2MApp, conditions::READY};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `Organization` or `M2MApp`.
    pub kind: &'static str,
    /// `success` or an error category.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Argon2Labels {
    /// `hash` (a new secret) or `verify` (a Secret checked against a recorded hash).
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// What the controller did to credentials: `issued`, `repaired`, `recovered`, `rotated`.
    pub action: &'static str,
}

/// The operator's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// `m2m_reconciles_total{kind, result}`.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// `m2m_reconcile_duration_seconds{kind}`.
    pub reconcile_duration: Family<KindLabels, Histogram>,
    /// `m2m_credentials_total{action}`: secrets issued, repaired, recovered, rotated.
    pub credentials: Family<EventLabels, Counter>,
    /// `m2m_controller_argon2_duration_seconds{op}`: each argon2id computation of the
    /// controllers, timed on the blocking thread (the wait for a hashing slot is not included).
    pub argon2: Family<Argon2Labels, Histogram>,
}

impl Metrics {
    /// Registers the metrics, and the `m2m_apps{reason}` gauge computed from `apps` at scrape.
    pub fn register(registry: &mut Registry, apps: Store<M2MApp>) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 14))
            }),
            credentials: Family::default(),
            argon2: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 10))
            }),
        };
        registry.register(
            "reconciles",
            "Reconciles by kind and result",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "credentials",
            "Client secrets written, by action",
            metrics.credentials.clone(),
        );
        registry.register(
            "controller_argon2_duration_seconds",
            "argon2id computations of the controllers by operation (hash, verify)",
            metrics.argon2.clone(),
        );
        registry.register_collector(Box::new(AppsByReason { apps }));
        metrics
    }

    /// Runs one argon2id computation `f`, recording its duration under `op`.
    pub fn time_argon2<T>(&self, op: &'static str, f: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let result = f();
        self.argon2
            .get_or_create(&Argon2Labels { op })
            .observe(started.elapsed().as_secs_f64());
        result
    }
}

/// `m2m_apps{reason}`: M2MApps by the reason of their Ready condition (`Pending` before the
/// first status), read from the cache at scrape time.
#[derive(Debug)]
struct AppsByReason {
    apps: Store<M2MApp>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// Counts apps by Ready reason.
pub fn count_by_reason<'a>(apps: impl IntoIterator<Item = &'a M2MApp>) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for app in apps {
        let reason = app
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY))
            .map_or("Pending", |c| c.reason.as_str());
        *counts.entry(reason.to_owned()).or_insert(0) += 1;
    }
    counts
}

impl Collector for AppsByReason {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.apps.state();
        let counts = count_by_reason(state.iter().map(AsRef::as_ref));
        let mut family = encoder.encode_descriptor(
            "apps",
            "M2MApps by the reason of their Ready condition",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (reason, count) in counts {
            let gauge = ConstGauge::new(count);
            gauge.encode(family.encode_family(&ReasonLabels { reason })?)?;
        }
        Ok(())
    }
}
