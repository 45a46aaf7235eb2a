//! Building a filled [`Cache`] and a key ring without a cluster, for the HTTP tests, the
//! benchmarks and the fuzzers.

use base64::{Engine, engine::general_purpose::STANDARD};
use k8s_openapi::{
    api::core::v1::Namespace, apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp,
};
use kube::core::{ObjectMeta, PartialObjectMeta};

use m2m_operator::{
    api::{M2MApp, M2MAppSpec, Organization, OrganizationRef, OrganizationSpec},
    cache::{Cache, CacheWriters, put},
    credentials::{
        generate::client_id,
        hash::PhcHash,
        record::{AppKey, ClientRecord},
    },
    token::{
        jwt::{Algorithm, KeyError, generate_pkcs8},
        signing_keys::{KeyRing, StoredKey, StoredKeySet},
    },
};

/// One app of a fixture world.
#[derive(Clone, Debug)]
pub struct FixtureApp {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub org: Option<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub disabled: bool,
    /// The stored `current` hash (a PHC string, or a hex SHA-256 for the benchmark baseline).
    pub current: String,
}

/// A cache filled by hand.
pub struct World {
    pub cache: Cache,
    writers: CacheWriters,
    pub operator_namespace: String,
}

impl World {
    pub fn new(operator_namespace: &str) -> Self {
        let (cache, writers) = Cache::detached();
        Self {
            cache,
            writers,
            operator_namespace: operator_namespace.to_owned(),
        }
    }

    pub fn namespace(&mut self, name: &str) -> &mut Self {
        put(
            &mut self.writers.namespaces,
            PartialObjectMeta::<Namespace> {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        self
    }

    pub fn org(
        &mut self,
        name: &str,
        code: &str,
        namespace: &str,
        allowed: &[&str],
        suspended: bool,
    ) -> &mut Self {
        let mut org = Organization::new(
            name,
            OrganizationSpec {
                code: Some(code.into()),
                namespaces: Some(vec![namespace.into()]),
                allowed_scopes: Some(allowed.iter().map(|s| s.to_string()).collect()),
                suspended,
                ..Default::default()
            },
        );
        org.metadata.creation_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        put(&mut self.writers.organizations, org);
        self.cache.org_codes.changed();
        self
    }

    pub fn app(&mut self, app: &FixtureApp) -> &mut Self {
        self.app_with(app, |_| {})
    }

    /// The app, with its M2MApp changed by `edit` (a quota, a rotation policy).
    pub fn app_with(&mut self, app: &FixtureApp, edit: impl FnOnce(&mut M2MApp)) -> &mut Self {
        self.app_full(app, None, edit)
    }

    /// An app with `spec.clientAuthentication`; without the `ClientSecret` method its record
    /// holds no hash (`app.current` is ignored), as the controller writes it.
    pub fn app_with_auth(
        &mut self,
        app: &FixtureApp,
        auth: Option<m2m_operator::api::ClientAuthentication>,
    ) -> &mut Self {
        self.app_full(app, auth, |_| {})
    }

    fn app_full(
        &mut self,
        app: &FixtureApp,
        auth: Option<m2m_operator::api::ClientAuthentication>,
        edit: impl FnOnce(&mut M2MApp),
    ) -> &mut Self {
        let keyless = auth
            .as_ref()
            .is_some_and(|a| !a.allows(m2m_operator::api::AuthMethod::ClientSecret));
        let mut obj = M2MApp::new(
            &app.name,
            M2MAppSpec {
                organization_ref: app.org.clone().map(|name| OrganizationRef { name }),
                scopes: app.scopes.clone(),
                audiences: app.audiences.clone(),
                token_lifetime: "15m".into(),
                disabled: app.disabled,
                client_authentication: auth.map(Box::new),
                ..Default::default()
            },
        );
        obj.metadata.namespace = Some(app.namespace.clone());
        obj.metadata.uid = Some(app.uid.clone());
        edit(&mut obj);
        put(&mut self.writers.apps, obj);
        let mut json = serde_json::json!({
            "clientId": client_id(&app.uid),
            "app": AppKey { namespace: app.namespace.clone(), name: app.name.clone(), uid: app.uid.clone() },
            "current": app.current,
            "revision": 1,
            "lastRotationTime": Timestamp::UNIX_EPOCH,
        });
        if keyless && let Some(obj) = json.as_object_mut() {
            obj.remove("current");
        }
        let record: Result<ClientRecord, _> = serde_json::from_value(json);
        if let Ok(secret) = record.and_then(|r| r.to_secret(&self.operator_namespace)) {
            m2m_operator::cache::records::put(&mut self.writers.records, secret);
        }
        self
    }

    /// Keeps the writers (and so the stores) alive for the life of the process.
    pub fn finish(self) -> Cache {
        let cache = self.cache.clone();
        std::mem::forget(self.writers);
        cache
    }
}

/// A PHC hash as stored (for fixtures).
pub fn phc(hash: &PhcHash) -> String {
    hash.as_str().to_owned()
}

/// A key ring with one key of `alg`, active since the epoch.
pub fn key_ring(alg: Algorithm) -> Result<KeyRing, KeyError> {
    let set = StoredKeySet {
        keys: vec![StoredKey {
            alg,
            pkcs8: STANDARD.encode(generate_pkcs8(alg)?),
            created_at: Timestamp::UNIX_EPOCH,
            active_from: Timestamp::UNIX_EPOCH,
            retired_at: None,
        }],
        handled_rotate_request: None,
    };
    Ok(KeyRing::from_stored(&set))
}

/// The uid of fixture app number `n`.
pub fn uid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}
