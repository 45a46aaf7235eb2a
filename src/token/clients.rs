//! The clients the token endpoint knows: looking up a client for a token request, from the watch-fed cache only (never the API
//! server): `client_id` -> client record -> M2MApp -> Organization and Namespace, and whether the
//! client may have tokens now (the same [`crate::tenancy`] decisions the controller makes).

use std::sync::Arc;

use kube::runtime::reflector::ObjectRef;

use crate::{
    api::{M2MApp, Organization},
    cache::Cache,
    credentials::{
        generate::CLIENT_ID_PREFIX,
        record::{ClientRecord, record_name},
    },
    tenancy::{self, Block, Grant, Refusal},
};

mod service_accounts;

pub use self::service_accounts::{NoApp, admits, for_service_account};

/// A known client.
#[derive(Clone, Debug)]
pub struct KnownClient {
    pub record: Arc<ClientRecord>,
    pub app: Arc<M2MApp>,
    pub org: Option<Arc<Organization>>,
}

/// Whether a known client may have tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    Allowed(Grant),
    Refused(Refusal),
    Blocked(Block),
}

/// The UID a client id was derived from (`m2m_` + 32 hex digits).
pub fn uid_of(client_id: &str) -> Option<String> {
    let hex = client_id.strip_prefix(CLIENT_ID_PREFIX)?;
    if hex.len() != 32
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// The client with this id, if its record and its (live) app are cached.
pub fn lookup(cache: &Cache, client_id: &str) -> Option<KnownClient> {
    let uid = uid_of(client_id)?;
    let cached = cache.records.get(&record_name(&uid))?;
    let record = cached.parsed()?.clone();
    if record.client_id != client_id || record.app.uid != uid {
        return None;
    }
    let app = cache
        .apps
        .get(&ObjectRef::new(&record.app.name).within(&record.app.namespace))
        .filter(|app| app.metadata.uid.as_deref() == Some(uid.as_str()))
        .filter(|app| app.metadata.deletion_timestamp.is_none())?;
    let org = app
        .spec
        .organization_ref
        .as_ref()
        .and_then(|r| cache.organizations.get(&ObjectRef::new(&r.name)));
    Some(KnownClient { record, app, org })
}

/// Whether the client may have tokens now.
pub fn standing(cache: &Cache, client: &KnownClient, global: &tenancy::GlobalApps) -> Standing {
    // Only the Organizations sharing its code can make it a duplicate: a map lookup, not a scan
    // of every Organization.
    let state = client.org.as_deref().map(|o| {
        let sharing = cache
            .org_codes
            .sharing(o.effective_code(), &cache.organizations);
        tenancy::org_state(o, sharing.iter().map(AsRef::as_ref))
    });
    let namespace = client.app.metadata.namespace.as_deref().unwrap_or_default();
    let ns = cache.namespaces.get(&ObjectRef::new(namespace));
    let labels = ns.as_ref().and_then(|ns| ns.metadata.labels.as_ref());
    match tenancy::grant(
        &client.app,
        client.org.as_deref().zip(state.as_ref()),
        labels,
        global,
    ) {
        Err(refusal) => Standing::Refused(refusal),
        // Secrets issued for an Organization that was deleted do not work for a new one of the
        // same name (a record from before the UID was recorded has none: it is filled in).
        Ok(_) if replaced(client) => Standing::Refused(tenancy::Refusal::OrganizationReplaced {
            org: client
                .app
                .spec
                .organization_ref
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_default(),
        }),
        Ok(grant) => match tenancy::block(&client.app, client.org.as_deref()) {
            Some(block) => Standing::Blocked(block),
            None => Standing::Allowed(grant),
        },
    }
}

/// Whether the client's record was issued for another Organization than the one its app
/// names now.
fn replaced(client: &KnownClient) -> bool {
    let issued_for = client.record.organization_uid.as_deref();
    issued_for.is_some()
        && issued_for != client.org.as_ref().and_then(|o| o.metadata.uid.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_map_back_to_uids() {
        let uid = "6f1c2a9e-1b2c-4d5e-8f90-a1b2c3d4e5f6";
        let id = crate::credentials::generate::client_id(uid);
        assert_eq!(uid_of(&id).as_deref(), Some(uid));
        for bad in [
            "",
            "m2m_",
            "m2m_xyz",
            "x2m_6f1c2a9e1b2c4d5e8f90a1b2c3d4e5f6",
            "m2m_6F1C2A9E1B2C4D5E8F90A1B2C3D4E5F6",
            "m2m_6f1c2a9e1b2c4d5e8f90a1b2c3d4e5f6/",
        ] {
            assert_eq!(uid_of(bad), None, "{bad}");
        }
    }
}
