//! The plan's decisions, from small fixtures: the world they plan in here, the steps in
//! `steps.rs`, rotation and revocation in `rotation.rs`.

mod keyless;
mod rotation;
mod steps;

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::{
    api::{M2MApp, M2MAppSpec},
    controller::app::observe::AppKeys,
    credentials::record::Previous,
    tenancy::Refusal,
};

pub(crate) fn t(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

pub(crate) const UID: &str = "0b0e2f4a-0000-4000-8000-000000000001";

pub(crate) fn record() -> ClientRecord {
    serde_json::from_value(serde_json::json!({
        "clientId": crate::credentials::generate::client_id(UID),
        "app": {"namespace": "n", "name": "agent", "uid": UID},
        "current": "$argon2id$current", "revision": 1, "lastRotationTime": "1970-01-01T00:01:40Z"
    }))
    .unwrap()
}

pub(crate) fn app() -> M2MApp {
    let mut a = M2MApp::new(
        "agent",
        M2MAppSpec {
            audiences: vec!["api".into()],
            ..Default::default()
        },
    );
    a.metadata.namespace = Some("n".into());
    a.metadata.uid = Some(UID.into());
    a.metadata.generation = Some(4);
    a
}

fn ok() -> Result<Grant, Refusal> {
    Ok(Grant {
        org_code: None,
        scopes: vec![],
    })
}

/// The app's Secret holding `secret` (controlled by the app).
pub(crate) fn secret_of(app: &M2MApp, secret: &str, record: &ClientRecord) -> Secret {
    let endpoints = endpoints();
    let grant = ok().unwrap();
    let mut s = tenant_secret::render(
        app,
        Some(&crate::credentials::generate::ClientSecret::new(secret)),
        &content(&record.client_id, record.revision, &grant, &endpoints),
    )
    .unwrap();
    s.metadata.uid = Some("secret-uid".into());
    s.metadata.resource_version = Some("7".into());
    s
}

fn endpoints() -> Endpoints {
    Endpoints {
        issuer: "https://m2m.example.com".into(),
        token_url: "https://m2m.example.com/oauth2/token".into(),
    }
}

/// A world to plan in.
pub(crate) struct World {
    pub app: M2MApp,
    pub grant: Result<Grant, Refusal>,
    pub record: Option<ClientRecord>,
    pub secret: Option<Secret>,
    pub state: SecretState,
    pub vouched: bool,
    pub deferred: bool,
    pub org_uid: Option<String>,
    pub now: Timestamp,
    pub usage: crate::controller::app::observe::AppUsageFacts,
    pub retire_unused_after: Option<std::time::Duration>,
}

impl World {
    /// An issued app whose Secret holds its current secret.
    pub fn issued() -> Self {
        let app = app();
        let record = record();
        let secret = secret_of(&app, "m2msec_current", &record);
        Self {
            app,
            grant: ok(),
            record: Some(record),
            secret: Some(secret),
            state: OURS_CURRENT,
            vouched: true,
            deferred: false,
            org_uid: None,
            now: t(200),
            usage: Default::default(),
            retire_unused_after: None,
        }
    }

    pub fn observed(&self) -> Observed<'_> {
        Observed {
            app: &self.app,
            keys: AppKeys::of(&self.app).unwrap(),
            now: self.now,
            endpoints: endpoints(),
            grant: self.grant.clone(),
            block: None,
            org_uid: self.org_uid.clone(),
            record: self.record.clone(),
            record_version: None,
            secret: self.secret.clone(),
            secret_state: self.state,
            secret_vouched: self.vouched,
            write_failure: None,
            secret_writes_deferred: self.deferred,
            template_refused: Vec::new(),
            usage: self.usage,
            retire_unused_after: self.retire_unused_after,
        }
    }

    pub fn plan(&self) -> Plan {
        plan(&self.observed())
    }

    pub fn annotate(&mut self, key: &str, value: &str) {
        self.app
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
    }
}

pub(crate) const OURS_CURRENT: SecretState = SecretState::Ours {
    matched: Some(SecretKind::Current),
    readable: true,
};

pub(super) fn issue_cause(p: &Plan) -> Option<IssueCause> {
    match &p.step {
        Step::Issue { cause, .. } => Some(*cause),
        _ => None,
    }
}

/// The issued world with a previous secret in its grace period (until t=1000).
pub(super) fn rotated_once() -> World {
    let mut w = World::issued();
    let rec = w.record.as_mut().unwrap();
    rec.previous = Some(Box::new(Previous {
        hash: serde_json::from_value(serde_json::json!("$argon2id$older")).unwrap(),
        expires_at: t(1000),
    }));
    rec.revision = 2;
    rec.handled_rotate_request = Some("r0".into());
    w.annotate("m2m.dev/rotate", "r0");
    w
}

pub(super) fn rotate_step(p: &Plan) -> (&ClientRecord, &Promotion) {
    match &p.step {
        Step::Rotate {
            record, promotion, ..
        } => (record, promotion),
        other => panic!("rotate, not {other:?}"),
    }
}
