//! Which apps a change of another object concerns (the M2MApp controller's trigger mappers).

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    ResourceExt,
    core::PartialObjectMeta,
    runtime::reflector::{ObjectRef, Store},
};

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::{
    api::{M2MApp, Organization, names::LABEL_APP},
    cache::Change,
};

/// The apps bound to `org`.
pub fn apps_of_org(apps: &Store<M2MApp>, org: &Organization) -> Vec<ObjectRef<M2MApp>> {
    let name = org.name_any();
    apps.state()
        .iter()
        .filter(|a| {
            a.spec
                .organization_ref
                .as_ref()
                .is_some_and(|r| r.name == name)
        })
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// The apps in namespace `ns`.
pub fn apps_in_namespace(
    apps: &Store<M2MApp>,
    ns: &PartialObjectMeta<Namespace>,
) -> Vec<ObjectRef<M2MApp>> {
    let name = ns.name_any();
    apps.state()
        .iter()
        .filter(|a| a.metadata.namespace.as_deref() == Some(name.as_str()))
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// The app a tenant Secret belongs to: its controller, or (when someone removed the
/// ownerReference, which the app's reconcile must notice) the app its `m2m.dev/app` label names.
pub fn owner_of_secret(secret: &PartialObjectMeta<Secret>) -> Option<ObjectRef<M2MApp>> {
    let namespace = secret.metadata.namespace.as_deref()?;
    let controller = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| {
            o.controller == Some(true)
                && o.kind == "M2MApp"
                && o.api_version.starts_with("m2m.dev/")
        })
        .map(|o| o.name.as_str());
    let labelled = || {
        secret
            .metadata
            .labels
            .as_ref()?
            .get(LABEL_APP)
            .map(String::as_str)
    };
    controller
        .or_else(labelled)
        .map(|name| ObjectRef::new(name).within(namespace))
}

/// The app a client record belongs to (an unreadable record names it in its annotations).
pub fn app_of_record(record: &crate::cache::CachedRecord) -> Option<ObjectRef<M2MApp>> {
    let (namespace, name) = record.app()?;
    Some(ObjectRef::new(name).within(namespace))
}

/// The apps among `uids` (the UIDs a usage report changed).
pub fn apps_with_uids(
    apps: &Store<M2MApp>,
    uids: &std::collections::HashSet<String>,
) -> Vec<ObjectRef<M2MApp>> {
    apps.state()
        .iter()
        .filter(|a| a.metadata.uid.as_ref().is_some_and(|u| uids.contains(u)))
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// The Organizations among `uids`.
pub fn orgs_with_uids(
    orgs: &Store<Organization>,
    uids: &std::collections::HashSet<String>,
) -> Vec<ObjectRef<Organization>> {
    orgs.state()
        .iter()
        .filter(|o| o.metadata.uid.as_ref().is_some_and(|u| uids.contains(u)))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// The tenant Secrets from the change bus; a relist that found some deleted (whose apps the
/// cache does not know) asks for a full resync through `resync`, after which each app whose
/// Secret is gone issues it again.
pub fn tenant_secrets_or_resync(
    resync: &mpsc::UnboundedSender<()>,
) -> impl Fn(Change) -> Option<Arc<PartialObjectMeta<Secret>>> + Send + 'static {
    let resync = resync.clone();
    move |change| match change {
        Change::TenantSecretsRemoved => {
            let _ = resync.send(());
            None
        }
        change => change.tenant_secret(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_secrets_removed_while_the_watch_was_down_ask_for_a_full_resync() {
        let (resync, mut requests) = mpsc::unbounded_channel();
        let pick = tenant_secrets_or_resync(&resync);
        let secret = Arc::new(PartialObjectMeta::<Secret>::default());
        assert!(
            pick(Change::TenantSecret(secret.clone())).is_some_and(|s| Arc::ptr_eq(&s, &secret))
        );
        assert!(
            requests.try_recv().is_err(),
            "a Secret's change is no resync"
        );
        assert!(pick(Change::TenantSecretsRemoved).is_none());
        assert_eq!(requests.try_recv(), Ok(()), "every app is reconciled");
        assert!(pick(Change::Namespace(Arc::new(PartialObjectMeta::default()))).is_none());
        assert!(requests.try_recv().is_err());
    }
}
