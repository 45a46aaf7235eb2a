//! Writing an object's status: server-side apply of the status subresource as the operator's
//! field manager, through one helper for both kinds.

use kube::{
    Api, Resource,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};

use super::Error;
use crate::api::names::FIELD_MANAGER;

/// Applies `status` to `obj` (through `api`). The operator owns every status field, so the
/// apply is forced; it is guarded by the resourceVersion the status was computed from, so a
/// status decided from a version of the object that changed meanwhile (or by a deposed leader
/// racing its successor) is refused with a conflict instead of written.
pub async fn patch_status<K>(api: &Api<K>, obj: &K, status: &impl Serialize) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.as_deref().unwrap_or_default();
    let mut patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    if let Some(version) = &obj.meta().resource_version {
        patch["metadata"] = serde_json::json!({"resourceVersion": version});
    }
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|source| Error::PatchStatus {
        kind: K::kind(&()).into_owned(),
        name: name.to_owned(),
        source,
    })
}
