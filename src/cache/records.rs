//! A client record as cached: the record parsed once, when its watch event arrives, and the
//! few metadata fields its readers use, instead of the whole Secret (its JSON data, labels and
//! annotations) beside a second, parsed copy; kept in a map by Secret name ([`super::keyed`])
//! rather than a reflector store (an `ObjectRef` key with four strings and a full `ObjectMeta`
//! per record: 1,541 bytes per app at 100,000 apps before, 847 after, `hack/bench.sh index`).
//! Every replica caches every app's record, and the token endpoint reads nothing else of it.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::watcher;

use super::keyed::{Keyed, KeyedWriter, WriterDropped, keyed};
use crate::credentials::record::{
    ANNOTATION_APP_NAME, ANNOTATION_APP_NAMESPACE, ClientRecord, LABEL_APP_UID,
};

/// One client record Secret, as the cache keeps it.
#[derive(Clone, Debug)]
pub struct CachedRecord {
    /// The Secret's name (its namespace is the operator's; the [`Records`] key shares this).
    pub name: Arc<str>,
    /// The Secret's UID and resourceVersion (the record collector's delete preconditions, the
    /// controller's write guard).
    pub uid: Option<Box<str>>,
    pub resource_version: Option<Box<str>>,
    /// Whether the Secret is being deleted (it has a deletionTimestamp).
    pub deleting: bool,
    /// The record, or why the Secret is not a readable one (it is rebuilt then).
    pub record: Result<Arc<ClientRecord>, Box<Unparsed>>,
}

/// A record Secret that does not hold a readable record: why, and the app its label and
/// annotations name (what the record collector needs to tell whether it is an orphan).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unparsed {
    pub reason: String,
    /// The `m2m.dev/app-uid` label.
    pub app_uid: Option<String>,
    /// The app's namespace and name annotations.
    pub app: Option<(String, String)>,
}

impl CachedRecord {
    /// The record, if the Secret held a readable one.
    pub fn parsed(&self) -> Option<&Arc<ClientRecord>> {
        self.record.as_ref().ok()
    }

    /// The UID of the app the record belongs to.
    pub fn app_uid(&self) -> Option<&str> {
        match &self.record {
            Ok(record) => Some(&record.app.uid),
            Err(unparsed) => unparsed.app_uid.as_deref(),
        }
    }

    /// The namespace and name of the app the record belongs to.
    pub fn app(&self) -> Option<(&str, &str)> {
        match &self.record {
            Ok(record) => Some((&record.app.namespace, &record.app.name)),
            Err(unparsed) => unparsed
                .app
                .as_ref()
                .map(|(ns, n)| (ns.as_str(), n.as_str())),
        }
    }

    /// The record of a Secret (`None` for one without a name, which the API server never
    /// sends).
    pub fn of(secret: Secret) -> Option<Self> {
        let record = ClientRecord::from_secret(&secret).map(Arc::new);
        let meta = secret.metadata;
        let record = record.map_err(|e| {
            let label = |key: &str| meta.labels.as_ref().and_then(|l| l.get(key)).cloned();
            let annotation =
                |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key)).cloned();
            Box::new(Unparsed {
                reason: e.to_string(),
                app_uid: label(LABEL_APP_UID),
                app: annotation(ANNOTATION_APP_NAMESPACE).zip(annotation(ANNOTATION_APP_NAME)),
            })
        });
        Some(Self {
            name: meta.name?.into(),
            uid: meta.uid.map(Into::into),
            resource_version: meta.resource_version.map(Into::into),
            deleting: meta.deletion_timestamp.is_some(),
            record,
        })
    }
}

/// The client records of the operator's namespace, by Secret name: a map of their own rather
/// than a reflector store (the token endpoint and the controller look records up by name; the
/// change bus carries each changed one to the controller's triggers and the record collector).
#[derive(Clone)]
pub struct Records {
    by_name: Keyed<Arc<str>, Arc<CachedRecord>>,
}

/// The writing side of [`Records`], fed the watch's events (or a test's).
pub struct RecordsWriter {
    by_name: KeyedWriter<Arc<str>, Arc<CachedRecord>>,
}

/// An empty map of records and its writer.
pub fn records() -> (Records, RecordsWriter) {
    let (by_name, writer) = keyed();
    (Records { by_name }, RecordsWriter { by_name: writer })
}

impl Records {
    /// The record Secret `name` (in the operator's namespace).
    pub fn get(&self, name: &str) -> Option<Arc<CachedRecord>> {
        self.by_name.get(name)
    }

    /// Every record.
    pub fn state(&self) -> Vec<Arc<CachedRecord>> {
        self.by_name.values()
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Waits until the first list is complete.
    pub async fn wait_until_ready(&self) -> Result<(), WriterDropped> {
        self.by_name.wait_until_ready().await
    }
}

impl RecordsWriter {
    /// Applies one watch event of record Secrets, as kube's reflector store would (a relist
    /// replaces the map when complete), and returns the records it touched (what the change
    /// bus carries: the map's own `Arc`s). A relist's records are returned when it completes,
    /// the new and changed ones and those it removed, so that whoever a change wakes finds
    /// that version in the map (kube's store published each relisted object while the map
    /// still held the old one, and a record deleted while the watch was down went unnoticed).
    pub fn apply(&mut self, event: watcher::Event<Secret>) -> Vec<Arc<CachedRecord>> {
        let w = &mut self.by_name;
        let record = |secret| CachedRecord::of(secret).map(Arc::new);
        match event {
            watcher::Event::Apply(secret) => record(secret)
                .inspect(|r| w.apply(r.name.clone(), r.clone()))
                .into_iter()
                .collect(),
            watcher::Event::Delete(secret) => record(secret)
                .inspect(|r| w.delete(&*r.name))
                .into_iter()
                .collect(),
            watcher::Event::InitApply(secret) => {
                if let Some(r) = record(secret) {
                    w.init_apply(r.name.clone(), r);
                }
                Vec::new()
            }
            watcher::Event::Init => {
                w.init();
                Vec::new()
            }
            watcher::Event::InitDone => {
                let relisted = w.init_done(|old, new| {
                    old.uid == new.uid
                        && old.resource_version == new.resource_version
                        && old.deleting == new.deleting
                });
                let mut touched = relisted.changed;
                touched.extend(relisted.removed);
                touched
            }
        }
    }

    /// [`Self::apply`] of a borrowed event (tests and detached caches).
    pub fn apply_watcher_event(&mut self, event: &watcher::Event<Secret>) {
        self.apply(event.clone());
    }
}

impl super::Cache {
    /// Waits up to `within` until the records store holds the client record `name` at a
    /// version other than `superseded` (the versions a reconcile read or wrote before its last
    /// write): then the token endpoint answers from that write or a later one. Returns whether
    /// it did.
    pub async fn record_visible(
        &self,
        name: &str,
        superseded: &[String],
        within: std::time::Duration,
    ) -> bool {
        let visible = || {
            self.records.get(name).is_some_and(|s| {
                s.resource_version
                    .as_deref()
                    .is_some_and(|rv| !superseded.iter().any(|s| s == rv))
            })
        };
        let deadline = tokio::time::Instant::now() + within;
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            if visible() {
                return true;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
    }
}

/// Puts a record Secret into a detached cache's records, as its watch would.
pub fn put(writer: &mut RecordsWriter, secret: Secret) {
    writer.apply(watcher::Event::Apply(secret));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::record::{AppKey, record_name};

    fn record() -> ClientRecord {
        ClientRecord {
            client_id: crate::credentials::generate::client_id("u-1"),
            app: AppKey {
                namespace: "tenant".into(),
                name: "agent".into(),
                uid: "u-1".into(),
            },
            current: None,
            pending: None,
            previous: None,
            revision: 1,
            last_rotation_time: k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            handled_rotate_request: None,
            handled_revoke_request: None,
            organization_uid: None,
        }
    }

    #[test]
    fn keeps_the_parsed_record_and_what_the_collector_reads() {
        let mut secret = record().to_secret("m2m-system").unwrap();
        secret.metadata.resource_version = Some("7".into());
        secret.metadata.managed_fields = Some(vec![Default::default()]);
        let cached = CachedRecord::of(secret).unwrap();
        assert_eq!(cached.parsed().map(|r| r.as_ref()), Some(&record()));
        assert_eq!(&*cached.name, record_name("u-1").as_str());
        assert_eq!(cached.resource_version.as_deref(), Some("7"));
        assert!(!cached.deleting);
        assert_eq!(cached.app_uid(), Some("u-1"));
        assert_eq!(cached.app(), Some(("tenant", "agent")));
    }

    #[test]
    fn an_unreadable_record_is_kept_with_the_reason() {
        let mut secret = record().to_secret("m2m-system").unwrap();
        secret.data = None;
        let cached = CachedRecord::of(secret).unwrap();
        assert!(cached.parsed().is_none());
        assert_eq!(cached.app_uid(), Some("u-1"), "from its label");
        assert_eq!(
            cached.app(),
            Some(("tenant", "agent")),
            "from its annotations"
        );
        assert!(cached.record.unwrap_err().reason.contains("has no"));
    }

    fn named(name: &str, rv: &str) -> Secret {
        let mut secret = record().to_secret("m2m-system").unwrap();
        secret.metadata.name = Some(name.into());
        secret.metadata.resource_version = Some(rv.into());
        secret
    }

    #[test]
    fn the_map_keeps_records_by_name_and_hands_the_bus_its_own_copy() {
        let (records, mut w) = records();
        let touched = w.apply(watcher::Event::Apply(named("a", "1")));
        let stored = records.get("a").unwrap();
        assert!(
            Arc::ptr_eq(&touched[0], &stored),
            "no second copy on the bus"
        );
        w.apply(watcher::Event::Apply(named("a", "2")));
        assert_eq!(
            records.get("a").unwrap().resource_version.as_deref(),
            Some("2")
        );
        let deleted = w.apply(watcher::Event::Delete(named("a", "3")));
        assert_eq!(&*deleted[0].name, "a", "a deletion is published too");
        assert!(records.get("a").is_none() && records.is_empty());
    }

    #[test]
    fn a_relist_publishes_what_it_changed_once_the_map_holds_it() {
        let (records, mut w) = records();
        w.apply(watcher::Event::Apply(named("gone", "1")));
        w.apply(watcher::Event::Apply(named("changed", "1")));
        w.apply(watcher::Event::Apply(named("same", "1")));
        assert!(w.apply(watcher::Event::Init).is_empty());
        for (name, rv) in [("changed", "2"), ("same", "1"), ("new", "1")] {
            assert!(
                w.apply(watcher::Event::InitApply(named(name, rv)))
                    .is_empty(),
                "nothing is published before the map holds it"
            );
        }
        assert!(
            records.get("gone").is_some(),
            "the old map answers meanwhile"
        );
        let mut published: Vec<_> = w
            .apply(watcher::Event::InitDone)
            .iter()
            .map(|r| {
                (
                    r.name.to_string(),
                    r.resource_version.as_deref().map(str::to_owned),
                )
            })
            .collect();
        published.sort();
        let version = |name: &str, rv: &str| (name.to_owned(), Some(rv.to_owned()));
        assert_eq!(
            published,
            [
                version("changed", "2"),
                version("gone", "1"),
                version("new", "1")
            ],
            "the removed one as it was, not the unchanged one"
        );
        for (name, rv) in [("changed", "2"), ("new", "1")] {
            let now = records.get(name).unwrap();
            assert_eq!(now.resource_version.as_deref(), Some(rv), "{name}");
        }
        assert!(
            records.get("gone").is_none(),
            "deleted while the watch was down"
        );
        assert_eq!(records.state().len(), 3);
    }
}
