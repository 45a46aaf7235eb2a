//! A client record as cached: the record parsed once, when its watch event arrives, and the
//! few metadata fields its readers use, instead of the whole Secret (its JSON data, labels and
//! annotations) beside a second, parsed copy. Every replica caches every app's record, and the
//! token endpoint reads nothing else of it.

use std::{borrow::Cow, sync::Arc};

use k8s_openapi::{NamespaceResourceScope, api::core::v1::Secret};
use kube::{
    Resource,
    core::ObjectMeta,
    runtime::{reflector, watcher},
};

use crate::credentials::record::{
    ANNOTATION_APP_NAME, ANNOTATION_APP_NAMESPACE, ClientRecord, LABEL_APP_UID,
};

/// One client record Secret, as the cache keeps it (deserialised from a Secret, so that a
/// controller can watch it through the cache's shared streams).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(from = "Secret")]
pub struct CachedRecord {
    /// Name, namespace, uid, resourceVersion and deletionTimestamp: no labels or annotations
    /// (a parsed record names its app itself; [`Unparsed`] keeps them for one that does not).
    pub metadata: ObjectMeta,
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
}

impl From<Secret> for CachedRecord {
    fn from(secret: Secret) -> Self {
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
        Self {
            metadata: ObjectMeta {
                name: meta.name,
                namespace: meta.namespace,
                uid: meta.uid,
                resource_version: meta.resource_version,
                deletion_timestamp: meta.deletion_timestamp,
                ..ObjectMeta::default()
            },
            record,
        }
    }
}

impl Resource for CachedRecord {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        Secret::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        Secret::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        Secret::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        Secret::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl super::Cache {
    /// Waits up to `within` until the records store holds the client record `name` (in
    /// `namespace`) at a version other than `superseded` (the versions a reconcile read or wrote
    /// before its last write): then the token endpoint answers from that write or a later one.
    /// Returns whether it did.
    pub async fn record_visible(
        &self,
        namespace: &str,
        name: &str,
        superseded: &[String],
        within: std::time::Duration,
    ) -> bool {
        let key = reflector::ObjectRef::new(name).within(namespace);
        let visible = || {
            self.records.get(&key).is_some_and(|s| {
                s.metadata
                    .resource_version
                    .as_ref()
                    .is_some_and(|rv| !superseded.contains(rv))
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

/// A watch event of record Secrets as one of cached records.
pub fn event(event: watcher::Event<Secret>) -> watcher::Event<CachedRecord> {
    match event {
        watcher::Event::Apply(s) => watcher::Event::Apply(s.into()),
        watcher::Event::Delete(s) => watcher::Event::Delete(s.into()),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(s) => watcher::Event::InitApply(s.into()),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// Puts a record Secret into a detached cache's store, as its watch would.
pub fn put(writer: &mut reflector::store::Writer<CachedRecord>, secret: Secret) {
    writer.apply_watcher_event(&watcher::Event::Apply(secret.into()));
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
        let cached = CachedRecord::from(secret);
        assert_eq!(cached.parsed().map(|r| r.as_ref()), Some(&record()));
        assert_eq!(
            cached.metadata.name.as_deref(),
            Some(record_name("u-1").as_str())
        );
        assert_eq!(cached.metadata.resource_version.as_deref(), Some("7"));
        assert!(cached.metadata.managed_fields.is_none());
        assert!(cached.metadata.labels.is_none() && cached.metadata.annotations.is_none());
        assert_eq!(cached.app_uid(), Some("u-1"));
        assert_eq!(cached.app(), Some(("tenant", "agent")));
    }

    #[test]
    fn an_unreadable_record_is_kept_with_the_reason() {
        let mut secret = record().to_secret("m2m-system").unwrap();
        secret.data = None;
        let cached = CachedRecord::from(secret);
        assert!(cached.parsed().is_none());
        assert_eq!(cached.app_uid(), Some("u-1"), "from its label");
        assert_eq!(
            cached.app(),
            Some(("tenant", "agent")),
            "from its annotations"
        );
        assert!(cached.record.unwrap_err().reason.contains("has no"));
    }
}
