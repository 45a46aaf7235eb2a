//! Which app a verified ServiceAccount token acts as: the app named by `client_id`, or, without
//! one, the only app of the token's namespace that lists the ServiceAccount. Either way the app
//! must accept `ServiceAccountToken`, live in the token's namespace and list its ServiceAccount.
//!
//! Without `client_id` the cached apps are scanned on each request (linear in the number of
//! apps; a client that sends `client_id` is looked up directly).

use super::{KnownClient, lookup};
use crate::{
    api::{AuthMethod, M2MApp},
    cache::Cache,
    credentials::generate,
    token::authn::assertion::SaIdentity,
};

/// Why no app was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoApp {
    /// No app (or not the one named) lets this ServiceAccount act as it.
    None,
    /// Several apps list this ServiceAccount: the client must say which with `client_id`.
    Ambiguous,
}

/// Whether `app` lets the ServiceAccount of `identity` act as it.
pub fn admits(app: &M2MApp, identity: &SaIdentity) -> bool {
    app.accepts(AuthMethod::ServiceAccountToken)
        && app.metadata.namespace.as_deref() == Some(identity.namespace.as_str())
        && app.metadata.deletion_timestamp.is_none()
        && app.spec.client_authentication.as_ref().is_some_and(|a| {
            a.service_account_names
                .contains(&identity.service_account.name)
        })
}

/// The client the token acts as.
pub fn for_service_account(
    cache: &Cache,
    identity: &SaIdentity,
    client_id: Option<&str>,
) -> Result<KnownClient, NoApp> {
    let client_id = match client_id {
        Some(id) => id.to_owned(),
        None => {
            let mut matching = cache
                .apps
                .state()
                .into_iter()
                .filter(|app| admits(app, identity));
            let first = matching.next().ok_or(NoApp::None)?;
            if matching.next().is_some() {
                return Err(NoApp::Ambiguous);
            }
            generate::client_id(first.metadata.uid.as_deref().ok_or(NoApp::None)?)
        }
    };
    let client = lookup(cache, &client_id).ok_or(NoApp::None)?;
    if admits(&client.app, identity) {
        Ok(client)
    } else {
        Err(NoApp::None)
    }
}
