//! The writes of an app without a client secret ([`Step::Keyless`](super::Step::Keyless)):
//! the Secret without `client_secret`, and the Event of what changed.

use k8s_openapi::api::core::v1::Secret;
use kube::{
    ResourceExt,
    api::{Patch, PatchParams},
};

use super::{Observed, Writes, plan, tenant_secret};
use crate::{
    api::names::FIELD_MANAGER,
    controller::{Error, app::plan::keyless::KeylessChange, events::Note},
    credentials::record::ClientRecord,
};

/// The metric action and the Event of a keyless plan's change, if it changed anything.
pub(super) fn keyless_note(
    o: &Observed<'_>,
    change: KeylessChange,
    record: Option<&ClientRecord>,
) -> Option<(&'static str, Note)> {
    let secret_name = o.app.secret_name();
    match change {
        KeylessChange::Kept => None,
        KeylessChange::Issued => Some((
            "issued",
            Note::normal(
                "CredentialsIssued",
                "IssueCredentials",
                format!(
                    "issued the client id into Secret {secret_name:?} (no client secret: \
                     spec.clientAuthentication leaves out ClientSecret)"
                ),
            ),
        )),
        KeylessChange::SecretRetired => {
            let until = record
                .and_then(|r| r.previous.as_ref())
                .map_or("is refused now".to_owned(), |p| {
                    format!("works until {}", p.expires_at)
                });
            Some((
                "retired",
                Note::normal(
                    "SecretRetired",
                    "RetireSecret",
                    format!(
                        "spec.clientAuthentication no longer accepts ClientSecret: removed \
                         client_secret from Secret {secret_name:?}; the retired secret {until}"
                    ),
                ),
            ))
        }
    }
}

impl Writes<'_> {
    /// Writes the Secret of an app without a client secret: `client_secret` removed first if
    /// it is there (a merge patch guarded by the resourceVersion read; server-side apply would
    /// leave a key written by `create`), then the rest applied.
    pub(super) async fn write_keyless_secret(&mut self, desired: Secret) -> Result<(), Error> {
        if let Some(existing) = self.secret.clone().filter(plan::keyless::has_client_secret) {
            let name = desired.name_any();
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": existing.metadata.resource_version},
                "data": {crate::api::names::secret_keys::CLIENT_SECRET: null},
            });
            let written = self
                .secrets
                .patch(
                    &name,
                    &PatchParams {
                        field_manager: Some(FIELD_MANAGER.to_owned()),
                        ..PatchParams::default()
                    },
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(|source| Error::WriteSecret {
                    namespace: self.o.keys.namespace.clone(),
                    name: name.clone(),
                    source,
                })?;
            self.secret = Some(written);
        }
        if self
            .secret
            .as_ref()
            .is_none_or(|existing| !tenant_secret::in_sync(existing, &desired))
        {
            self.put_secret(desired).await?;
        }
        Ok(())
    }
}
