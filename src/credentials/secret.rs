//! The tenant Secret workloads mount: rendered from the app, its grant and its credentials
//! (pure), and the checks the controller makes on an existing one.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::Resource;

use super::generate::ClientSecret;
use crate::api::{
    M2MApp,
    names::{ANNOTATION_REVISION, LABEL_APP, LABEL_MANAGED_BY, MANAGED_BY_VALUE, secret_keys},
};

/// Where the token endpoint is, as written into every Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub issuer: String,
    pub token_url: String,
}

/// What a Secret holds besides the client secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretContent<'a> {
    pub client_id: &'a str,
    pub org_code: Option<&'a str>,
    pub scopes: &'a [String],
    pub revision: i64,
    pub endpoints: &'a Endpoints,
}

/// The controller ownerReference that makes the Secret the app's (and garbage-collected with it).
pub fn owner_reference(app: &M2MApp) -> Option<OwnerReference> {
    let mut owner = app.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}

/// The desired tenant Secret, with `client_secret` only when `secret` is given (an app without
/// the `ClientSecret` method has none). `None` when the app has no name, namespace or UID yet.
pub fn render(
    app: &M2MApp,
    secret: Option<&ClientSecret>,
    content: &SecretContent<'_>,
) -> Option<Secret> {
    let owner = owner_reference(app)?;
    let app_name = app.metadata.name.as_deref()?;
    let template = app.spec.secret_template.clone().unwrap_or_default();

    let mut labels = template.labels;
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned());
    labels.insert(LABEL_APP.to_owned(), app_name.to_owned());
    let mut annotations = template.annotations;
    annotations.insert(ANNOTATION_REVISION.to_owned(), content.revision.to_string());

    let mut data = BTreeMap::from([
        (secret_keys::CLIENT_ID, content.client_id.to_owned()),
        (secret_keys::TOKEN_URL, content.endpoints.token_url.clone()),
        (secret_keys::ISSUER, content.endpoints.issuer.clone()),
        (secret_keys::AUDIENCE, app.spec.audiences.join(" ")),
        (secret_keys::SCOPE, content.scopes.join(" ")),
    ]);
    if let Some(code) = content.org_code {
        data.insert(secret_keys::ORG_CODE, code.to_owned());
    }
    if let Some(secret) = secret {
        data.insert(secret_keys::CLIENT_SECRET, secret.expose().to_owned());
    }
    Some(Secret {
        metadata: ObjectMeta {
            name: Some(app.secret_name()),
            namespace: app.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    })
}

/// Whether the object is controlled by the app with this UID.
pub fn controlled_by(meta: &ObjectMeta, app_uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == app_uid)
}

/// The `client_secret` a Secret holds, if it is valid UTF-8.
pub fn client_secret_of(secret: &Secret) -> Option<ClientSecret> {
    let bytes = secret.data.as_ref()?.get(secret_keys::CLIENT_SECRET)?;
    String::from_utf8(bytes.0.clone())
        .ok()
        .map(ClientSecret::new)
}

/// Whether `existing` already has everything `desired` sets: the same data for our keys, our
/// labels and annotations, type and controller. Keys, labels and annotations added by others
/// are left alone (server-side apply does not own them).
pub fn in_sync(existing: &Secret, desired: &Secret) -> bool {
    fn contains(
        have: &Option<BTreeMap<String, String>>,
        want: &Option<BTreeMap<String, String>>,
    ) -> bool {
        want.iter()
            .flatten()
            .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
    }
    let data_ok = desired
        .data
        .iter()
        .flatten()
        .all(|(k, v)| existing.data.as_ref().and_then(|d| d.get(k)) == Some(v));
    let owner_ok = desired
        .metadata
        .owner_references
        .iter()
        .flatten()
        .all(|o| controlled_by(&existing.metadata, &o.uid));
    data_ok
        && owner_ok
        && existing.type_ == desired.type_
        && contains(&existing.metadata.labels, &desired.metadata.labels)
        && contains(
            &existing.metadata.annotations,
            &desired.metadata.annotations,
        )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{M2MAppSpec, SecretTemplate};

    pub(crate) fn app() -> M2MApp {
        let mut app = M2MApp::new(
            "agent",
            M2MAppSpec {
                scopes: vec!["read:users".into()],
                audiences: vec!["https://api.example.com".into(), "billing".into()],
                token_lifetime: "1h".into(),
                secret_template: Some(Box::new(SecretTemplate {
                    labels: BTreeMap::from([("team".into(), "a".into())]),
                    annotations: BTreeMap::from([("reloader".into(), "true".into())]),
                })),
                ..M2MAppSpec::default()
            },
        );
        app.metadata.namespace = Some("tenant-a".into());
        app.metadata.uid = Some("uid-1".into());
        app
    }

    fn endpoints() -> Endpoints {
        Endpoints {
            issuer: "https://m2m.example.com".into(),
            token_url: "https://m2m.example.com/oauth2/token".into(),
        }
    }

    fn data(s: &Secret, key: &str) -> Option<String> {
        s.data
            .as_ref()?
            .get(key)
            .map(|b| String::from_utf8(b.0.clone()).unwrap())
    }

    #[test]
    fn renders_every_contract_key_label_annotation_and_owner() {
        let scopes = vec!["read:users".to_owned()];
        let ep = endpoints();
        let content = SecretContent {
            client_id: "m2m_1",
            org_code: Some("org_123"),
            scopes: &scopes,
            revision: 3,
            endpoints: &ep,
        };
        let s = render(&app(), Some(&ClientSecret::new("m2msec_x")), &content).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("agent-credentials"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("tenant-a"));
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(data(&s, "client_id").as_deref(), Some("m2m_1"));
        assert_eq!(data(&s, "client_secret").as_deref(), Some("m2msec_x"));
        assert_eq!(
            data(&s, "token_url").as_deref(),
            Some("https://m2m.example.com/oauth2/token")
        );
        assert_eq!(
            data(&s, "issuer").as_deref(),
            Some("https://m2m.example.com")
        );
        assert_eq!(
            data(&s, "audience").as_deref(),
            Some("https://api.example.com billing")
        );
        assert_eq!(data(&s, "scope").as_deref(), Some("read:users"));
        assert_eq!(data(&s, "org_code").as_deref(), Some("org_123"));
        let labels = s.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "m2m-operator");
        assert_eq!(labels["m2m.dev/app"], "agent");
        assert_eq!(labels["team"], "a");
        let annotations = s.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations["m2m.dev/revision"], "3");
        assert_eq!(annotations["reloader"], "true");
        assert!(controlled_by(&s.metadata, "uid-1"));
        assert!(!controlled_by(&s.metadata, "uid-2"));
    }

    #[test]
    fn global_apps_have_no_org_code() {
        let ep = endpoints();
        let content = SecretContent {
            client_id: "m2m_1",
            org_code: None,
            scopes: &[],
            revision: 1,
            endpoints: &ep,
        };
        let s = render(&app(), Some(&ClientSecret::new("m2msec_x")), &content).unwrap();
        assert_eq!(data(&s, "org_code"), None);
        assert_eq!(data(&s, "scope").as_deref(), Some(""));
    }

    #[test]
    fn a_keyless_app_gets_every_key_but_client_secret() {
        let ep = endpoints();
        let scopes = vec!["read:users".to_owned()];
        let content = SecretContent {
            client_id: "m2m_1",
            org_code: Some("org_123"),
            scopes: &scopes,
            revision: 1,
            endpoints: &ep,
        };
        let s = render(&app(), None, &content).unwrap();
        let keys: Vec<&str> = s
            .data
            .as_ref()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "audience",
                "client_id",
                "issuer",
                "org_code",
                "scope",
                "token_url"
            ]
        );
        assert_eq!(client_secret_of(&s), None);
    }

    #[test]
    fn in_sync_ignores_foreign_additions_but_not_edits() {
        let ep = endpoints();
        let content = SecretContent {
            client_id: "m2m_1",
            org_code: None,
            scopes: &[],
            revision: 1,
            endpoints: &ep,
        };
        let desired = render(&app(), Some(&ClientSecret::new("m2msec_x")), &content).unwrap();
        let mut existing = desired.clone();
        assert!(in_sync(&existing, &desired));
        existing
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("extra".into(), "1".into());
        existing
            .data
            .as_mut()
            .unwrap()
            .insert("extra".into(), ByteString(b"1".to_vec()));
        assert!(in_sync(&existing, &desired));
        existing
            .data
            .as_mut()
            .unwrap()
            .insert("scope".into(), ByteString(b"admin".to_vec()));
        assert!(!in_sync(&existing, &desired));
    }
}
