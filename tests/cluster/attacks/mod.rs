//! The attack matrix, against a running operator and the real API server over real HTTP: every
//! attack is refused, and no response body, status or Event carries a secret, a hash or a token.
//! Each attack is its own test over a fresh [`Arena`], so one failure hides no other.

mod credentials;
mod requests;
mod tenancy;
mod tokens;

use std::time::Duration;

use kube::{Api, Client};
use m2m_operator::api::M2MApp;
use serde_json::{Value, json};

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    http,
    operator::{Operator, Options},
};

/// Collects what must never appear anywhere a caller or a tenant can read.
#[derive(Default)]
pub struct Sensitive(Vec<String>);

impl Sensitive {
    pub fn add(&mut self, value: &str) {
        if value.len() >= 8 {
            self.0.push(value.to_owned());
        }
    }

    pub fn assert_absent(&self, what: &str, text: &str) {
        for value in &self.0 {
            assert!(
                !text.contains(value.as_str()),
                "{what} leaks a secret, hash or token"
            );
        }
    }
}

/// An app's credentials.
#[derive(Clone, Debug)]
pub struct Creds {
    pub id: String,
    pub secret: String,
}

/// Two tenants: Organization `acme` (namespace `a`, scopes read and write) with the app
/// `agent`, and Organization `globex` (namespace `b`) with the app `other`; an operator running
/// as its real identity. [`Arena::finish`] checks that nothing the attacks saw leaked, and
/// cleans up.
pub struct Arena {
    pub client: Client,
    pub op: Operator,
    pub a: TestNamespace,
    pub b: TestNamespace,
    pub acme: String,
    pub globex: String,
    pub acme_code: String,
    pub globex_code: String,
    pub agent: Creds,
    pub other: Creds,
    pub sensitive: Sensitive,
    /// Error bodies seen, with what caused them.
    pub bodies: Vec<(String, String)>,
    /// Apps whose status and Events are checked for leaks at the end.
    pub apps: Vec<(String, String)>,
}

impl Arena {
    pub async fn new(name: &str) -> Self {
        Self::with(name, Options::default()).await
    }

    pub async fn with(name: &str, options: Options) -> Self {
        let client = common::client().await;
        let op = Operator::start_with(&client, options).await;
        let a = TestNamespace::new(&client, &format!("m2m-{name}-a")).await;
        let b = TestNamespace::new(&client, &format!("m2m-{name}-b")).await;
        let (acme, globex) = (
            org_name(&format!("{name}-acme")),
            org_name(&format!("{name}-globex")),
        );
        let (acme_code, globex_code) = (
            format!("org_{}", common::suffix()),
            format!("org_{}", common::suffix()),
        );
        apply_org(
            &client,
            &acme,
            json!({"code": acme_code, "namespaces": [a.name], "allowedScopes": ["read", "write"]}),
        )
        .await;
        apply_org(
            &client,
            &globex,
            json!({"code": globex_code, "namespaces": [b.name]}),
        )
        .await;
        apply_app(&client, &a.name, "agent", app_spec(&acme, json!(["read"]))).await;
        apply_app(
            &client,
            &b.name,
            "other",
            app_spec(&globex, json!(["read"])),
        )
        .await;
        let mut arena = Self {
            agent: Creds {
                id: String::new(),
                secret: String::new(),
            },
            other: Creds {
                id: String::new(),
                secret: String::new(),
            },
            client,
            op,
            a,
            b,
            acme,
            globex,
            acme_code,
            globex_code,
            sensitive: Sensitive::default(),
            bodies: Vec::new(),
            apps: Vec::new(),
        };
        let (a_ns, b_ns) = (arena.a.name.clone(), arena.b.name.clone());
        arena.agent = arena.issued(&a_ns, "agent").await;
        arena.other = arena.issued(&b_ns, "other").await;
        arena
    }

    /// Waits until the app is Ready, then returns its credentials (remembered as sensitive, with
    /// its hashes).
    pub async fn issued(&mut self, ns: &str, app: &str) -> Creds {
        wait_app_reason(&self.client, ns, app, "True", "CredentialsIssued").await;
        let (id, secret) = credentials(&self.client, ns, app).await;
        self.sensitive.add(&secret);
        self.remember_hashes(ns, app).await;
        self.apps.push((ns.to_owned(), app.to_owned()));
        Creds { id, secret }
    }

    /// Adds the app's current hashes to what must not leak.
    pub async fn remember_hashes(&mut self, ns: &str, app: &str) {
        let uid = uid(&get_app(&self.client, ns, app).await);
        if let Some(rec) = record(&self.client, &uid).await {
            for hash in [rec.current.as_ref(), rec.previous.as_ref().map(|p| &p.hash)]
                .into_iter()
                .flatten()
            {
                self.sensitive.add(
                    &serde_json::to_value(hash)
                        .unwrap()
                        .to_string()
                        .replace('"', ""),
                );
            }
        }
    }

    /// A token request as `creds`; the error body is kept for the leak check.
    pub async fn token(&mut self, creds: &Creds, extra: &[(&str, &str)]) -> (u16, Value) {
        let (status, body) = http::token(&self.op.url(), &creds.id, &creds.secret, extra).await;
        if status == 200 {
            if let Some(t) = body["access_token"].as_str() {
                self.sensitive.add(t);
            }
        } else {
            self.bodies
                .push((format!("token as {}", creds.id), body.to_string()));
        }
        (status, body)
    }

    /// Waits until a token request as `creds` answers `status` (and `error`, if given).
    pub async fn wait_token(&self, what: &str, creds: &Creds, status: u16, error: Option<&str>) {
        wait_for(what, Duration::from_secs(15), || async {
            match http::token(&self.op.url(), &creds.id, &creds.secret, &[]).await {
                (s, body) if s == status && error.is_none_or(|e| body["error"] == e) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }

    /// The M2MApps of namespace `ns`.
    pub fn apps_in(&self, ns: &str) -> Api<M2MApp> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Checks that nothing sensitive reached an error body, a status, an Event or the operator's
    /// log, then removes everything the arena made.
    pub async fn finish(self) {
        for (what, body) in &self.bodies {
            self.sensitive.assert_absent(what, body);
        }
        for (ns, app) in &self.apps {
            let app_obj = Api::<M2MApp>::namespaced(self.client.clone(), ns)
                .get_opt(app)
                .await
                .expect("get app");
            if let Some(app_obj) = app_obj {
                let status = serde_json::to_string(&app_obj.status).unwrap();
                self.sensitive
                    .assert_absent(&format!("status of {app}"), &status);
            }
            let events = event_messages(&self.client, ns, app).await.join("\n");
            self.sensitive
                .assert_absent(&format!("Events of {app}"), &events);
        }
        self.sensitive
            .assert_absent("the operator's log", &self.op.log_text());
        delete_org(&self.client, &self.acme).await;
        delete_org(&self.client, &self.globex).await;
        self.a.delete().await;
        self.b.delete().await;
    }
}

/// The spec of an app of Organization `org` with these scopes (grace period 3s).
pub fn app_spec(org: &str, scopes: Value) -> Value {
    json!({"organizationRef": {"name": org}, "scopes": scopes,
           "audiences": ["https://api.example.com"], "rotation": {"gracePeriod": "3s"}})
}
