//! Writing an object's status: server-side apply of the status subresource as the operator's
//! field manager, through one helper for both kinds.

use kube::{
    Api, Resource,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};

use super::Error;
use crate::api::keys::FIELD_MANAGER;

/// Applies `status` to the object `name` of `api`. The operator owns every status field, so
/// the apply is forced.
pub async fn patch_status<K>(api: &Api<K>, name: &str, status: &impl Serialize) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
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
