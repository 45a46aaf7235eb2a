//! The I/O of usage reporting: every replica writes its [`Report`] into its own ConfigMap
//! `m2m-usage-<pod name>` in the operator's namespace, and every replica watches all of them
//! (the leader's controllers read the merged view, [`Board`]).
//!
//! Writes: one server-side apply of one small ConfigMap, only when the report changed, and at
//! most one per `interval` per replica; the first change after a quiet interval is written at
//! once, so the leader learns of a first use within a write's latency. That is at most
//! `60 / interval` writes a minute per replica (12 with the default 5s), whatever the number of
//! apps.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Recorder, Reports, report::Report};
use crate::api::names::{FIELD_MANAGER, LABEL_MANAGED_BY, MANAGED_BY_VALUE};

/// `m2m.dev/component` of the report ConfigMaps.
pub const COMPONENT: &str = "usage-report";
/// The data key holding the report's JSON.
pub const DATA_KEY: &str = "report.json";
/// The label naming the replica that writes the report.
const LABEL_REPLICA: &str = "m2m.dev/replica";

/// The name of `replica`'s report ConfigMap.
pub fn name_of(replica: &str) -> String {
    let safe: String = replica
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .take(200)
        .collect();
    format!("m2m-usage-{}", safe.trim_end_matches(['-', '.']))
}

fn config_map(replica: &str, report: &Report) -> Result<ConfigMap, serde_json::Error> {
    let json = serde_json::to_string(report)?;
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned());
    labels.insert(
        crate::credentials::record::LABEL_COMPONENT.to_owned(),
        COMPONENT.to_owned(),
    );
    let mut annotations = BTreeMap::new();
    annotations.insert(LABEL_REPLICA.to_owned(), replica.to_owned());
    Ok(ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name_of(replica)),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(DATA_KEY.to_owned(), json)])),
        ..Default::default()
    })
}

/// Writes `recorder`'s report for `replica` whenever it changed, at most once per `interval`,
/// until `shutdown` (then once more, so nothing recorded before the end is lost).
pub async fn run(
    client: Client,
    namespace: String,
    replica: String,
    recorder: Arc<Recorder>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let mut written: Option<Report> = None;
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            () = recorder.changed() => false,
        };
        let report = recorder.snapshot(crate::token::quota::now_unix());
        if written.as_ref() != Some(&report) {
            match write(&api, &replica, &report).await {
                Ok(()) => written = Some(report),
                Err(e) => {
                    tracing::warn!(error = %e, "writing this replica's usage report failed; retrying");
                    // Try again after the interval even if nothing else changes.
                    recorder.changed.notify_one();
                }
            }
        }
        if stopping {
            return;
        }
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(interval) => {}
        }
    }
}

async fn write(api: &Api<ConfigMap>, replica: &str, report: &Report) -> Result<(), kube::Error> {
    let cm = config_map(replica, report).map_err(kube::Error::SerdeError)?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name_of(replica), &params, &Patch::Apply(&cm))
        .await
        .map(|_| ())
}

/// Every replica's latest report, and which apps and organizations changed (by UID), for the
/// leader's controllers.
pub struct Board {
    reports: RwLock<Reports>,
    changed: broadcast::Sender<Arc<Changes>>,
    /// Whether every report that existed when the watch started has been read (until then no
    /// decision may rest on a use not being reported).
    synced: std::sync::atomic::AtomicBool,
}

impl Default for Board {
    fn default() -> Self {
        Self {
            reports: RwLock::default(),
            changed: broadcast::channel(64).0,
            synced: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Board {
    /// Whether the reports that existed when the watch started have all been read.
    pub fn synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks the board as holding every report (tests, and the watch once listed).
    pub fn mark_synced(&self) {
        self.synced
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Reads the merged view.
    pub fn with<T>(&self, f: impl FnOnce(&Reports) -> T) -> T {
        match self.reports.read() {
            Ok(r) => f(&r),
            Err(_) => f(&Reports::default()),
        }
    }

    /// The UIDs (of apps and organizations) whose figures changed, per report change.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Changes>> {
        self.changed.subscribe()
    }

    /// Replaces `replica`'s report (`None`: gone) and announces what changed.
    pub fn set(&self, replica: &str, report: Option<Report>) {
        let Ok(mut reports) = self.reports.write() else {
            return;
        };
        let empty = Report::default();
        let before = reports.get(replica).unwrap_or(&empty);
        let after = report.as_ref().unwrap_or(&empty);
        let changed = changed_uids(before, after);
        match report {
            Some(r) => reports.insert(replica.to_owned(), r),
            None => reports.remove(replica),
        };
        drop(reports);
        if !changed.is_empty() {
            let _ = self.changed.send(Arc::new(changed));
        }
    }
}

/// What one report change changed, by UID (of apps and organizations).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// A first event: an entry that was not there, a previous secret of a new rotation, a quota
    /// exceeded that was not before. Status shows these at once.
    pub fresh: HashSet<String>,
    /// Any other change (counts, times): status catches up at most once per refresh.
    pub updated: HashSet<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.fresh.is_empty() && self.updated.is_empty()
    }
}

/// The UIDs whose entries differ between two reports of one replica.
fn changed_uids(before: &Report, after: &Report) -> Changes {
    let mut changes = Changes::default();
    for uid in before.apps.keys().chain(after.apps.keys()) {
        let (b, a) = (before.apps.get(uid), after.apps.get(uid));
        if b == a {
            continue;
        }
        let revision = |u: Option<&super::report::AppUsage>| {
            u.and_then(|u| u.previous_secret).map(|p| p.revision)
        };
        let quota =
            |u: Option<&super::report::AppUsage>| u.and_then(|u| u.quota_exceeded_at).is_some();
        let fresh =
            (revision(a).is_some() && revision(a) != revision(b)) || (quota(a) && !quota(b));
        if fresh {
            changes.fresh.insert(uid.clone());
        } else {
            changes.updated.insert(uid.clone());
        }
    }
    for uid in before
        .organizations
        .keys()
        .chain(after.organizations.keys())
    {
        let (b, a) = (before.organizations.get(uid), after.organizations.get(uid));
        if b == a {
            continue;
        }
        let exceeded =
            |o: Option<&super::report::OrgUsage>| o.and_then(|o| o.quota_exceeded_at).is_some();
        if exceeded(a) && !exceeded(b) {
            changes.fresh.insert(uid.clone());
        } else {
            changes.updated.insert(uid.clone());
        }
    }
    changes
}

/// Keeps `board` at the reports in `namespace` until `shutdown`.
pub fn watch(client: Client, namespace: &str, board: Arc<Board>, shutdown: CancellationToken) {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let selector = format!(
        "{}={COMPONENT}",
        crate::credentials::record::LABEL_COMPONENT
    );
    let stream = watcher(api, watcher::Config::default().labels(&selector))
        .backoff(crate::cache::backoff::watch_backoff());
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = stream.next() => next,
            };
            match next {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "watching the usage reports failed; retrying");
                }
                // A deleted report keeps counting (what it reported did happen) until the
                // leader restarts; its uses are also in the status already.
                Some(Ok(watcher::Event::Delete(_) | watcher::Event::Init)) => {}
                Some(Ok(watcher::Event::InitDone)) => board.mark_synced(),
                Some(Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm))) => {
                    let Some(name) = cm.metadata.name.clone() else {
                        continue;
                    };
                    let report = cm
                        .data
                        .as_ref()
                        .and_then(|d| d.get(DATA_KEY))
                        .and_then(|json| serde_json::from_str::<Report>(json).ok());
                    if report.is_none() {
                        tracing::warn!(name, "a usage report cannot be read; ignoring it");
                    }
                    board.set(&name, report);
                }
            }
        }
    });
}
