//! What each cached object keeps: only the fields some reader reads (the controllers, the token
//! endpoint, [`crate::tenancy`], the metrics), because every replica caches every M2MApp and
//! Organization and a tenant decides how large those are.
//!
//! | object | kept | dropped |
//! |---|---|---|
//! | M2MApp, Organization | name, namespace, uid, resourceVersion, generation, creationTimestamp (the older of two Organizations with one code wins), deletionTimestamp; on M2MApps the `m2m.dev/rotate` and `m2m.dev/revoke-previous` annotations (values over 128 characters as `sha256:<hex>`, so status can record them); spec without `displayName`; status (the controller compares it with the desired one) | labels, every other annotation (up to 256 KiB), ownerReferences, finalizers, managedFields |
//! | Namespace (metadata only) | identity and labels (`namespaceSelector`) | annotations, managedFields |
//! | client record Secret (ours) | the parsed record; name, uid, resourceVersion, whether it is being deleted; for one that does not parse, the app-uid label and the app's namespace and name annotations ([`super::records`], a map by name) | the Secret's data (parsed instead), every other field |
//! | tenant Secret (metadata only) | in the store: namespace and name ([`super::Presence`]: does it exist); on the change bus: identity, the M2MApp controller ownerReference, the `m2m.dev/app` label | everything else |

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::{ObjectMeta, PartialObjectMeta};

use crate::api::{
    M2MApp, Organization,
    names::{ANNOTATION_REVOKE_PREVIOUS, ANNOTATION_ROTATE, LABEL_APP},
    validation::MAX_REQUEST_VALUE_LEN,
};

/// The annotations of an M2MApp that the operator reads.
const APP_ANNOTATIONS: [&str; 2] = [ANNOTATION_ROTATE, ANNOTATION_REVOKE_PREVIOUS];

/// An M2MApp as cached.
pub fn app(app: &mut M2MApp) {
    let annotations = app.metadata.annotations.take().unwrap_or_default();
    let kept: BTreeMap<String, String> = annotations
        .into_iter()
        .filter(|(k, _)| APP_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k, request_value(v)))
        .collect();
    app.metadata = identity(&mut app.metadata);
    app.metadata.annotations = (!kept.is_empty()).then_some(kept);
    app.spec.display_name = None;
}

/// An Organization as cached.
pub fn organization(org: &mut Organization) {
    org.metadata = identity(&mut org.metadata);
    org.spec.display_name = None;
}

/// A Namespace's metadata as cached: identity and labels.
pub fn namespace(ns: &mut PartialObjectMeta<Namespace>) {
    let labels = ns.metadata.labels.take();
    ns.metadata = identity(&mut ns.metadata);
    ns.metadata.labels = labels;
}

/// What a tenant Secret's cache entry keeps: its identity, its controller ownerReference when
/// that is an M2MApp, and its `m2m.dev/app` label (the triggers of its app's reconcile), not
/// its other owners, labels or annotations, nor the type fields every entry would repeat.
pub fn tenant_secret(secret: &mut PartialObjectMeta<Secret>) {
    secret.types = None;
    let meta = &mut secret.metadata;
    let app = meta.labels.as_mut().and_then(|l| l.remove_entry(LABEL_APP));
    let controller: Vec<_> = meta
        .owner_references
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|o| o.controller == Some(true) && o.kind == "M2MApp")
        .take(1)
        .collect();
    *meta = identity(meta);
    meta.owner_references = (!controller.is_empty()).then_some(controller);
    meta.labels = app.map(|entry| [entry].into());
}

/// The metadata every cached object keeps.
fn identity(meta: &mut ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        uid: meta.uid.take(),
        resource_version: meta.resource_version.take(),
        generation: meta.generation.take(),
        creation_timestamp: meta.creation_timestamp.take(),
        deletion_timestamp: meta.deletion_timestamp.take(),
        ..Default::default()
    }
}

/// A request annotation's value as the controller compares and records it: as written up to
/// [`MAX_REQUEST_VALUE_LEN`] characters, else `sha256:` and its hex digest (distinct values
/// stay distinct, and `status.rotation` never holds more than the schema allows).
pub fn request_value(value: String) -> String {
    if value.chars().count() <= MAX_REQUEST_VALUE_LEN {
        return value;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference};

    use super::*;
    use crate::api::{M2MAppSpec, OrganizationSpec};

    fn full_meta() -> ObjectMeta {
        ObjectMeta {
            name: Some("a".into()),
            namespace: Some("n".into()),
            uid: Some("u".into()),
            resource_version: Some("7".into()),
            generation: Some(3),
            labels: Some([("team".to_string(), "x".repeat(63))].into()),
            annotations: Some(
                [
                    ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
                    ("m2m.dev/rotate", "1"),
                    ("m2m.dev/revoke-previous", "2"),
                    ("m2m.dev/other", "3"),
                    ("example.com/big", &"x".repeat(200_000)),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ),
            managed_fields: Some(vec![ManagedFieldsEntry::default()]),
            owner_references: Some(vec![OwnerReference::default()]),
            finalizers: Some(vec!["example.com/f".into()]),
            ..Default::default()
        }
    }

    #[test]
    fn an_app_keeps_only_what_readers_read() {
        let mut app = M2MApp::new("a", M2MAppSpec::default());
        app.metadata = full_meta();
        app.spec.display_name = Some("d".repeat(256));
        app.spec.audiences = vec!["api".into()];
        app.status = Some(Default::default());
        let spec_before = M2MAppSpec {
            display_name: None,
            ..app.spec.clone()
        };
        self::app(&mut app);
        let m = &app.metadata;
        assert_eq!(
            (m.name.as_deref(), m.namespace.as_deref(), m.uid.as_deref()),
            (Some("a"), Some("n"), Some("u"))
        );
        assert_eq!(
            (m.resource_version.as_deref(), m.generation),
            (Some("7"), Some(3))
        );
        let kept: Vec<&str> = m
            .annotations
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(kept, ["m2m.dev/revoke-previous", "m2m.dev/rotate"]);
        assert_eq!(app.rotate_request(), Some("1"));
        assert!(m.labels.is_none() && m.managed_fields.is_none());
        assert!(m.owner_references.is_none() && m.finalizers.is_none());
        assert_eq!(app.spec, spec_before, "spec but displayName is kept");
        assert!(app.status.is_some(), "status is kept");
    }

    #[test]
    fn an_organization_keeps_its_spec_and_creation_time() {
        let mut org = Organization::new("o", OrganizationSpec::default());
        org.metadata = full_meta();
        org.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1).expect("time"),
            ));
        org.spec.display_name = Some("Acme".into());
        org.spec.namespaces = Some(vec!["t".into()]);
        organization(&mut org);
        assert!(org.metadata.annotations.is_none() && org.metadata.labels.is_none());
        assert!(org.metadata.creation_timestamp.is_some());
        assert_eq!(org.spec.display_name, None);
        assert_eq!(org.spec.namespaces, Some(vec!["t".into()]));
    }

    #[test]
    fn a_namespace_keeps_its_labels_only() {
        let mut ns = PartialObjectMeta::<Namespace> {
            metadata: full_meta(),
            ..Default::default()
        };
        namespace(&mut ns);
        assert_eq!(ns.metadata.labels.map(|l| l.len()), Some(1));
        assert!(ns.metadata.annotations.is_none() && ns.metadata.managed_fields.is_none());
    }

    #[test]
    fn a_tenant_secret_keeps_its_app_controller_and_label_only() {
        let owner = |kind: &str, controller: bool| OwnerReference {
            api_version: "m2m.dev/v1alpha1".into(),
            kind: kind.into(),
            name: "agent".into(),
            uid: "u1".into(),
            controller: Some(controller),
            block_owner_deletion: None,
        };
        let mut meta = full_meta();
        meta.owner_references = Some(vec![owner("Deployment", false), owner("M2MApp", true)]);
        meta.labels
            .get_or_insert_default()
            .insert(LABEL_APP.into(), "agent".into());
        let mut secret = PartialObjectMeta::<Secret> {
            types: Some(kube::core::TypeMeta {
                api_version: "meta.k8s.io/v1".into(),
                kind: "PartialObjectMetadata".into(),
            }),
            metadata: meta,
            ..Default::default()
        };
        tenant_secret(&mut secret);
        assert!(secret.types.is_none());
        let m = &secret.metadata;
        assert_eq!(m.owner_references, Some(vec![owner("M2MApp", true)]));
        assert_eq!(
            m.labels,
            Some([(LABEL_APP.to_owned(), "agent".to_owned())].into())
        );
        assert!(m.annotations.is_none() && m.managed_fields.is_none() && m.finalizers.is_none());
        assert_eq!(
            crate::controller::app::triggers::owner_of_secret(&secret).map(|r| r.name),
            Some("agent".to_owned())
        );
    }

    #[test]
    fn long_request_values_become_distinct_digests() {
        assert_eq!(request_value("x".repeat(128)), "x".repeat(128));
        let a = request_value("x".repeat(129));
        let b = request_value(format!("{}y", "x".repeat(128)));
        assert!(a.starts_with("sha256:") && a.len() == 71, "{a}");
        assert_ne!(a, b);
        assert_eq!(request_value(a.clone()), a, "a digest is stable");
    }
}
