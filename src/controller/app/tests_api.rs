//! The API calls of the M2MApp reconcile against a fake API ([`crate::controller::fake_api`]):
//! the order and number of writes of issue, rotation and repair.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};

use super::reconcile_app;
use crate::{
    api::M2MApp,
    cache::{self, Cache},
    controller::{Context, ControllerConfig, Error, fake_api::FakeApi},
    credentials::secret::Endpoints,
    metrics::Metrics,
};

pub const NS: &str = "tenant";
pub const OPERATOR_NS: &str = "m2m-system";
pub const UID: &str = "0b0e2f4a-0000-4000-8000-000000000001";
pub const RECORD: &str =
    "/api/v1/namespaces/m2m-system/secrets/m2m-client-0b0e2f4a-0000-4000-8000-000000000001";
pub const SECRET: &str = "/api/v1/namespaces/tenant/secrets/agent-credentials";
pub const APP: &str = "/apis/m2m.dev/v1alpha1/namespaces/tenant/m2mapps/agent";

/// A global app allowed in its namespace, in the fake API and the cache, and a Context over them.
pub struct Harness {
    pub api: FakeApi,
    pub ctx: Context,
    pub app: M2MApp,
    /// The cache's writers: [`Harness::reconcile`] plays the watches, putting what the fake API
    /// holds into the cache first.
    writers: cache::CacheWriters,
}

impl Harness {
    pub fn new(spec: Value) -> Self {
        let api = FakeApi::default();
        let app: M2MApp = serde_json::from_value(json!({
            "apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
            "metadata": {"name": "agent", "namespace": NS, "uid": UID, "generation": 1},
            "spec": spec,
        }))
        .unwrap();
        api.put(APP, serde_json::to_value(&app).unwrap());
        let (cache, mut writers) = Cache::detached();
        let ns = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
        cache::put(&mut writers.namespaces, ns);
        cache::put(&mut writers.apps, app.clone());
        let metrics = Arc::new(Metrics::register(
            &mut prometheus_client::registry::Registry::default(),
            cache.apps.clone(),
        ));
        let ctx = Context::new(
            api.client(),
            cache,
            ControllerConfig {
                operator_namespace: OPERATOR_NS.into(),
                endpoints: Endpoints {
                    issuer: "https://m2m.example.com".into(),
                    token_url: "https://m2m.example.com/oauth2/token".into(),
                },
                resync: Duration::from_secs(3600),
                instance: "test".into(),
                global_apps: crate::tenancy::GlobalApps::anywhere(),
                template_keys: Default::default(),
                usage_report_interval: std::time::Duration::from_secs(5),
                record_visible_within: Duration::from_millis(300),
            },
            metrics,
        );
        Self {
            api,
            ctx,
            app,
            writers,
        }
    }

    /// What the watches would have delivered by now: the record and the app's Secret as the fake
    /// API holds them (or their deletion).
    pub fn sync_cache(&mut self) {
        use kube::runtime::watcher::Event;
        let record: Option<k8s_openapi::api::core::v1::Secret> = self
            .api
            .get(RECORD)
            .map(|v| serde_json::from_value(v).unwrap());
        match record {
            Some(r) => self.writers.records.apply_watcher_event(&Event::Apply(r)),
            None => self.writers.records.apply_watcher_event(&Event::Init),
        }
        if self.api.get(RECORD).is_none() {
            self.writers.records.apply_watcher_event(&Event::InitDone);
        }
        let secret: Option<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Secret>> =
            self.api.get(SECRET).map(|mut v| {
                v["apiVersion"] = json!("v1");
                v["kind"] = json!("Secret");
                let meta = v["metadata"].take();
                serde_json::from_value(
                    json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta}),
                )
                .unwrap()
            });
        match secret {
            Some(s) => {
                self.writers
                    .tenant_secrets
                    .apply_watcher_event(&Event::Apply(s));
            }
            None => {
                self.writers
                    .tenant_secrets
                    .apply_watcher_event(&Event::<k8s_openapi::api::core::v1::Secret>::Init);
                self.writers
                    .tenant_secrets
                    .apply_watcher_event(&Event::<k8s_openapi::api::core::v1::Secret>::InitDone);
            }
        }
    }

    /// Empties the cache of records, as if their watch had not delivered any yet.
    pub fn forget_records(&mut self) {
        use kube::runtime::watcher::Event;
        self.writers.records.apply_watcher_event(&Event::Init);
        self.writers.records.apply_watcher_event(&Event::InitDone);
    }

    /// Reconciles the app as the fake API now holds it (with the status written last).
    pub async fn reconcile(&mut self) {
        if let Some(stored) = self.api.get(APP) {
            self.app = serde_json::from_value(stored).unwrap();
        }
        self.sync_cache();
        self.api.clear_calls();
        self.reconcile_watched().await.expect("reconcile");
    }

    /// Reconciles while the watch of the records plays along: each record write reaches the
    /// cache a moment later, as it would from the API server.
    pub async fn reconcile_watched(&mut self) -> Result<kube::runtime::controller::Action, Error> {
        let Self {
            api,
            ctx,
            app,
            writers,
            ..
        } = self;
        let watch = async {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                if let Some(record) = api.get(RECORD) {
                    let record: k8s_openapi::api::core::v1::Secret =
                        serde_json::from_value(record).unwrap();
                    writers
                        .records
                        .apply_watcher_event(&kube::runtime::watcher::Event::Apply(record));
                }
            }
        };
        tokio::select! {
            result = reconcile_app(app, ctx) => result,
            () = watch => unreachable!(),
        }
    }

    pub fn annotate(&mut self, key: &str, value: &str) {
        let mut stored = self.api.get(APP).unwrap();
        stored["metadata"]["annotations"][key] = json!(value);
        self.api.put(APP, stored);
    }

    pub fn record(&self) -> crate::credentials::record::ClientRecord {
        let secret = serde_json::from_value(self.api.get(RECORD).expect("record")).unwrap();
        crate::credentials::record::ClientRecord::from_secret(&secret).unwrap()
    }

    pub fn client_secret(&self) -> String {
        let secret = self.api.get(SECRET).expect("Secret");
        let b64 = secret["data"]["client_secret"].as_str().unwrap();
        use base64::Engine;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    }
}

const CREATE_RECORD: &str = "POST /api/v1/namespaces/m2m-system/secrets";
const CREATE_SECRET: &str = "POST /api/v1/namespaces/tenant/secrets";
fn replace_record() -> String {
    format!("PUT {RECORD}")
}
fn patch_secret() -> String {
    format!("PATCH {SECRET}")
}
fn patch_status() -> String {
    format!("PATCH {APP}/status")
}

#[tokio::test]
async fn issue_writes_the_record_then_the_secret_then_the_status() {
    let mut h = Harness::new(json!({"audiences": ["api"]}));
    h.reconcile().await;
    // Neither the record nor the Secret is in the cache: a first issue reads nothing.
    assert_eq!(
        h.api.calls(),
        [
            CREATE_RECORD.to_owned(),
            CREATE_SECRET.to_owned(),
            patch_status(),
        ]
    );
    assert!(
        h.api
            .event_reasons()
            .contains(&"CredentialsIssued".to_owned())
    );

    // A second reconcile of the unchanged world reads the Secret (its data is not cached) and
    // writes nothing.
    h.reconcile().await;
    assert_eq!(h.api.calls(), [format!("GET {SECRET}")]);
}

#[tokio::test]
async fn a_cache_that_lags_behind_costs_a_retry_never_a_working_secret() {
    let mut h = Harness::new(json!({"audiences": ["api"]}));
    h.reconcile().await;
    let issued = h.client_secret();
    // The next reconcile starts before the watches delivered the record and the Secret: the
    // cache still shows neither.
    h.forget_records();
    h.api.clear_calls();
    let lagging = reconcile_app(&h.app, &h.ctx).await;
    assert!(
        lagging.is_err(),
        "the create of an existing record is refused"
    );
    assert_eq!(h.api.writes(), [CREATE_RECORD.to_owned()]);
    assert_eq!(h.client_secret(), issued, "the Secret is untouched");
    assert!(
        crate::credentials::hash::verify(&issued, h.record().current.as_ref().unwrap()),
        "and its secret is still the record's"
    );
    // Once the cache caught up, nothing more happens.
    h.reconcile().await;
    assert_eq!(h.api.writes(), Vec::<String>::new());
}

#[tokio::test]
async fn rotation_writes_pending_then_the_secret_then_promotes() {
    let mut h = Harness::new(json!({"audiences": ["api"]}));
    h.reconcile().await;
    let first = h.client_secret();
    h.annotate("m2m.dev/rotate", "r1");
    h.reconcile().await;
    assert_eq!(
        h.api.writes(),
        [
            replace_record(),
            patch_secret(),
            replace_record(),
            patch_status()
        ]
    );
    let record = h.record();
    assert_eq!(record.revision, 2);
    assert!(
        record.previous.is_some(),
        "the old secret keeps its grace period"
    );
    assert_eq!(record.handled_rotate_request.as_deref(), Some("r1"));
    assert_ne!(h.client_secret(), first);
}

#[tokio::test]
async fn a_deleted_secret_is_repaired_record_first() {
    let mut h = Harness::new(json!({"audiences": ["api"]}));
    h.reconcile().await;
    let first = h.client_secret();
    h.api.0.lock().unwrap().objects.remove(SECRET);
    h.reconcile().await;
    assert_eq!(
        h.api.writes(),
        [replace_record(), CREATE_SECRET.to_owned(), patch_status()]
    );
    assert_ne!(h.client_secret(), first, "a new secret");
    assert!(h.api.event_reasons().contains(&"SecretRepaired".to_owned()));
}

#[tokio::test]
async fn a_lost_record_is_rebuilt_from_the_secret_the_operator_wrote() {
    let mut h = Harness::new(json!({"audiences": ["api"]}));
    h.reconcile().await;
    let secret = h.client_secret();
    h.api.0.lock().unwrap().objects.remove(RECORD);
    // A new process: nothing remembered but the status marker.
    h.ctx.verified.forget(UID);
    h.reconcile().await;
    assert_eq!(
        h.api.writes(),
        [CREATE_RECORD.to_owned()],
        "no new secret, same status"
    );
    assert_eq!(h.client_secret(), secret, "the secret is unchanged");
    assert!(
        h.api
            .event_reasons()
            .contains(&"RecordRecovered".to_owned())
    );
}

#[tokio::test]
async fn rotate_and_revoke_in_one_change_leave_only_the_new_secret() {
    let mut h = Harness::new(json!({"audiences": ["api"]}));
    h.reconcile().await;
    h.annotate("m2m.dev/rotate", "leak");
    h.annotate("m2m.dev/revoke-previous", "leak");
    h.reconcile().await;
    let record = h.record();
    assert!(record.previous.is_none(), "the replaced secret is refused");
    assert_eq!(record.handled_revoke_request.as_deref(), Some("leak"));
    assert_eq!(record.revision, 2);
}

/// The argon2id hashes the controller computed so far.
fn hashes(h: &Harness) -> u64 {
    let mut text = String::new();
    let mut registry = prometheus_client::registry::Registry::default();
    // The family is shared with the Context's metrics.
    registry.register("argon2", "", h.ctx.metrics.argon2.clone());
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text.lines()
        .find(|l| l.starts_with("argon2_count{op=\"hash\"}"))
        .and_then(|l| l.split_whitespace().last())
        .map_or(0, |n| n.parse().unwrap())
}

/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test]
async fn a_secret_the_api_server_refuses_costs_one_hash_per_backoff_step_and_says_why() {
    let mut h = Harness::new(json!({"audiences": ["api"]}));
    // An admission policy that refuses the Secret, and echoes its data (as a careless webhook
    // might): the secret must not reach the status, the Event or the error.
    h.api.fail_when(|method, path, body| {
        (method == http::Method::POST && path == "/api/v1/namespaces/tenant/secrets").then(|| {
            let echoed = body["data"]["client_secret"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (
                422,
                "Invalid",
                format!("metadata.labels: Invalid value: \"bad key\" (data {echoed})"),
            )
        })
    });
    let first = reconcile_app(&h.app, &h.ctx).await;
    let err = first.expect_err("the Secret write fails");
    assert!(
        matches!(err, crate::controller::Error::SecretRefused { .. }),
        "{err}"
    );
    assert_eq!(hashes(&h), 1);
    let stored: M2MApp = serde_json::from_value(h.api.get(APP).unwrap()).unwrap();
    let condition = &stored.status.as_ref().unwrap().conditions[0];
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "SecretWriteFailed")
    );
    assert!(
        condition.message.contains("bad key"),
        "{}",
        condition.message
    );
    assert!(
        condition.message.contains("<redacted>"),
        "{}",
        condition.message
    );
    assert!(
        !condition.message.contains("m2msec_"),
        "{}",
        condition.message
    );
    assert!(!err.to_string().contains("m2msec_"), "{err}");
    assert_eq!(
        h.api
            .event_reasons()
            .iter()
            .filter(|r| *r == "SecretWriteFailed")
            .count(),
        1
    );

    // The record's own watch event (and any other trigger) starts reconciles at once: they
    // hash nothing, write nothing, publish nothing new, until the backoff step is over.
    for i in 0..5 {
        h.reconcile().await;
        let writes = h.api.writes();
        if i == 0 {
            // The status now also shows the record written before the refusal (its client id).
            assert_eq!(writes, [patch_status()]);
        } else {
            assert_eq!(writes, Vec::<String>::new());
        }
    }
    assert_eq!(hashes(&h), 1, "no new secret while the refusal holds");
    assert_eq!(
        h.api
            .event_reasons()
            .iter()
            .filter(|r| *r == "SecretWriteFailed")
            .count(),
        1,
        "the Event says it once"
    );

    // The tenant fixes the spec (a new generation): the next reconcile tries at once, succeeds,
    // and the app is Ready.
    h.api.stop_failing();
    let mut stored = h.api.get(APP).unwrap();
    stored["metadata"]["generation"] = json!(2);
    h.api.put(APP, stored);
    h.reconcile().await;
    assert_eq!(hashes(&h), 2);
    let stored: M2MApp = serde_json::from_value(h.api.get(APP).unwrap()).unwrap();
    assert_eq!(
        stored.status.unwrap().conditions[0].reason,
        "CredentialsIssued"
    );
    assert!(h.api.get(SECRET).is_some());
}

/// The watch of the records is behind (after an API server restart it may retry for seconds):
/// the credentials are written and told in an Event, but no status says they were issued while
/// this replica's token endpoint would still refuse them.
#[tokio::test]
async fn the_status_waits_until_this_replicas_cache_holds_the_record() {
    let mut h = Harness::new(json!({"audiences": ["api"]}));
    h.sync_cache();
    let behind = reconcile_app(&h.app, &h.ctx).await;
    assert!(
        matches!(behind, Err(Error::CacheBehind { .. })),
        "{behind:?}"
    );
    assert_eq!(
        h.api.writes(),
        [CREATE_RECORD.to_owned(), CREATE_SECRET.to_owned()],
        "no status write"
    );
    assert!(
        h.api
            .event_reasons()
            .contains(&"CredentialsIssued".to_owned())
    );
    // Once the watch delivered the record, the next reconcile writes the status alone.
    h.reconcile().await;
    assert_eq!(h.api.writes(), [patch_status()]);
    let status = &h.api.get(APP).unwrap()["status"];
    assert_eq!(status["conditions"][0]["reason"], "CredentialsIssued");
}

/// A cache still holding the version the reconcile read does not count: a revocation is not
/// reported before this replica refuses the revoked secret.
#[tokio::test]
async fn a_revocation_is_not_reported_while_the_cache_holds_the_record_before_it() {
    let mut h = Harness::new(json!({"audiences": ["api"]}));
    h.reconcile().await;
    h.annotate("m2m.dev/rotate", "r1");
    h.reconcile().await;
    assert!(h.record().previous.is_some());
    h.annotate("m2m.dev/revoke-previous", "leak");
    if let Some(stored) = h.api.get(APP) {
        h.app = serde_json::from_value(stored).unwrap();
    }
    h.sync_cache();
    h.api.clear_calls();
    let behind = reconcile_app(&h.app, &h.ctx).await;
    assert!(
        matches!(behind, Err(Error::CacheBehind { .. })),
        "{behind:?}"
    );
    assert_eq!(h.api.writes(), [replace_record()], "no status write");
    assert!(h.record().previous.is_none(), "the record was revoked");
    h.reconcile().await;
    assert_eq!(h.api.writes(), [patch_status()]);
}
