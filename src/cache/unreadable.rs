//! The watched custom resources that exist but cannot be read as the operator's types (a newer
//! or older CRD version, a hand-edited object stored under a looser schema). They are not in the
//! cache, so they get no tokens; this set remembers them so that nothing takes their absence
//! for a deletion (the client-record collector keeps their records) and people can see them
//! (`m2m_unreadable_objects{kind}`, a warning in the log).

use std::{collections::BTreeMap, sync::RwLock};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::gauge::ConstGauge,
    registry::Registry,
};

/// One object that does not deserialise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadableObject {
    pub kind: &'static str,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: Option<String>,
}

type Key = (&'static str, Option<String>, String);

impl UnreadableObject {
    fn key(&self) -> Key {
        (self.kind, self.namespace.clone(), self.name.clone())
    }
}

/// The kinds watched through [`super::guarded`], each shown in the metric even at 0.
pub const KINDS: [&str; 2] = ["M2MApp", "Organization"];

/// The unreadable objects of every guarded watch.
#[derive(Debug, Default)]
pub struct Unreadable {
    objects: RwLock<BTreeMap<Key, UnreadableObject>>,
}

impl Unreadable {
    /// Every unreadable object, by kind, namespace and name.
    pub fn list(&self) -> Vec<UnreadableObject> {
        self.objects
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether an object with this uid is unreadable (so it exists, though it is not cached).
    pub fn has_uid(&self, uid: &str) -> bool {
        self.objects
            .read()
            .map(|m| m.values().any(|o| o.uid.as_deref() == Some(uid)))
            .unwrap_or(true) // a poisoned lock: claim it exists, so nothing is deleted
    }

    pub(super) fn mark(&self, object: UnreadableObject) {
        if let Ok(mut m) = self.objects.write() {
            m.insert(object.key(), object);
        }
    }

    /// Forgets the object of that kind, namespace and name; whether it was unreadable.
    pub(super) fn clear(&self, kind: &'static str, namespace: Option<&str>, name: &str) -> bool {
        self.objects.write().is_ok_and(|mut m| {
            m.remove(&(kind, namespace.map(str::to_owned), name.to_owned()))
                .is_some()
        })
    }

    /// After a full list: exactly `objects` are the unreadable ones of `kind`.
    pub(super) fn replace_kind(&self, kind: &'static str, objects: Vec<UnreadableObject>) {
        if let Ok(mut m) = self.objects.write() {
            m.retain(|(k, _, _), _| *k != kind);
            m.extend(objects.into_iter().map(|o| (o.key(), o)));
        }
    }

    fn count(&self, kind: &str) -> i64 {
        self.objects.read().map_or(0, |m| {
            m.keys().filter(|(k, _, _)| *k == kind).count() as i64
        })
    }

    /// Registers `m2m_unreadable_objects{kind}`, read from this set at scrape time.
    pub fn register(self: &std::sync::Arc<Self>, registry: &mut Registry) {
        registry.register_collector(Box::new(UnreadableGauge(self.clone())));
    }
}

#[derive(Debug)]
struct UnreadableGauge(std::sync::Arc<Unreadable>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

impl Collector for UnreadableGauge {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "unreadable_objects",
            "Watched objects that do not match the operator's types (they get no tokens)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for kind in KINDS {
            ConstGauge::new(self.0.count(kind))
                .encode(family.encode_family(&KindLabel { kind })?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn object(name: &str, uid: &str) -> UnreadableObject {
        UnreadableObject {
            kind: "M2MApp",
            namespace: Some("n".into()),
            name: name.into(),
            uid: Some(uid.into()),
        }
    }

    #[test]
    fn the_metric_counts_each_kind() {
        let set = Arc::new(Unreadable::default());
        set.mark(object("a", "1"));
        set.mark(object("b", "2"));
        let mut registry = Registry::with_prefix("m2m");
        set.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains("m2m_unreadable_objects{kind=\"M2MApp\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("m2m_unreadable_objects{kind=\"Organization\"} 0"),
            "{text}"
        );
        assert!(set.has_uid("2") && !set.has_uid("3"));
        assert!(set.clear("M2MApp", Some("n"), "a"));
        assert!(!set.clear("M2MApp", Some("n"), "a"));
        set.replace_kind("M2MApp", vec![object("c", "3")]);
        assert_eq!(set.list(), vec![object("c", "3")]);
    }
}
