//! The client record: everything the token endpoint needs to authenticate one app's client,
//! kept in a Secret in the operator's namespace (`m2m-client-<app uid>`), so the token endpoint
//! never reads Secrets in tenant namespaces. It holds argon2id hashes only, never a secret.
//!
//! The record is also the source of truth of the rotation state (revision, handled annotation
//! values): it is written in the same request as the hashes it describes, so a crash can never
//! leave the two disagreeing. `M2MApp.status` mirrors it.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret, jiff::Timestamp};
use kube::api::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::hash::PhcHash;
use crate::api::names::{LABEL_MANAGED_BY, MANAGED_BY_VALUE};

/// Label marking client-record Secrets (the token endpoint and the controller select on it).
pub const LABEL_COMPONENT: &str = "m2m.dev/component";
/// Value of [`LABEL_COMPONENT`] on client records.
pub const COMPONENT_CLIENT_RECORD: &str = "client-record";
/// Label with the UID of the M2MApp a record belongs to.
pub const LABEL_APP_UID: &str = "m2m.dev/app-uid";
/// Annotation with the namespace of the M2MApp a record belongs to.
pub const ANNOTATION_APP_NAMESPACE: &str = "m2m.dev/app-namespace";
/// Annotation with the name of the M2MApp a record belongs to.
pub const ANNOTATION_APP_NAME: &str = "m2m.dev/app-name";
/// Data key holding the record as JSON.
pub const DATA_KEY: &str = "record.json";

/// Which M2MApp a record belongs to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AppKey {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A secret written to the hash list before it reaches the tenant Secret (crash safety).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    pub hash: PhcHash,
    /// The `m2m.dev/rotate` value this rotation answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_request: Option<String>,
    /// When the rotation started (becomes `lastRotationTime`).
    pub started_at: Timestamp,
}

/// The previous secret, accepted until `expires_at`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Previous {
    pub hash: PhcHash,
    pub expires_at: Timestamp,
}

/// One app's client record.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClientRecord {
    pub client_id: String,
    pub app: AppKey,
    /// Hash of the secret in the tenant Secret (`None`: the app has no client secret, its
    /// `spec.clientAuthentication` leaves out `ClientSecret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<PhcHash>,
    /// Hash of a secret being rotated in: accepted, and promoted to `current` once the tenant
    /// Secret holds it. Boxed, as `previous`: both are set only around a rotation, and every
    /// replica caches every record (320 instead of 232 bytes inline: 384- instead of 256-byte
    /// blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Box<Pending>>,
    /// Hash of the previous secret during its grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Box<Previous>>,
    /// 1 at issue, +1 per rotation.
    pub revision: i64,
    /// When `current` was issued by issue or rotation.
    pub last_rotation_time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_rotate_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_revoke_request: Option<String>,
    /// The UID of the Organization the secrets were issued for (`None`: a global app, or a
    /// record written before this field existed, which the controller fills in). An
    /// Organization of the same name created again has another UID: the secrets issued for the
    /// old one get no tokens from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_uid: Option<String>,
}

/// A Secret that is not a readable client record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("client record {name} has no {DATA_KEY} key")]
    MissingData { name: String },
    #[error("client record {name} is not valid: {source}")]
    Invalid {
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Name of the record Secret of the app with this UID.
pub fn record_name(app_uid: &str) -> String {
    format!("m2m-client-{app_uid}")
}

impl ClientRecord {
    /// Every hash a presented secret may match, newest first, with the previous one only
    /// while its grace period runs at `now`.
    pub fn accepted_hashes(&self, now: Timestamp) -> impl Iterator<Item = (&PhcHash, SecretKind)> {
        let pending = self
            .pending
            .as_ref()
            .map(|p| (&p.hash, SecretKind::Pending));
        let previous = self
            .previous
            .as_ref()
            .filter(|p| now < p.expires_at)
            .map(|p| (&p.hash, SecretKind::Previous));
        self.current
            .iter()
            .map(|h| (h, SecretKind::Current))
            .chain(pending)
            .chain(previous)
    }

    /// The record as a Secret in `namespace`.
    pub fn to_secret(&self, namespace: &str) -> Result<Secret, serde_json::Error> {
        let json = serde_json::to_vec(self)?;
        Ok(Secret {
            metadata: ObjectMeta {
                name: Some(record_name(&self.app.uid)),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([
                    (LABEL_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
                    (
                        LABEL_COMPONENT.to_owned(),
                        COMPONENT_CLIENT_RECORD.to_owned(),
                    ),
                    (LABEL_APP_UID.to_owned(), self.app.uid.clone()),
                ])),
                annotations: Some(BTreeMap::from([
                    (
                        ANNOTATION_APP_NAMESPACE.to_owned(),
                        self.app.namespace.clone(),
                    ),
                    (ANNOTATION_APP_NAME.to_owned(), self.app.name.clone()),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([(DATA_KEY.to_owned(), ByteString(json))])),
            ..Secret::default()
        })
    }

    /// Reads a record from its Secret.
    pub fn from_secret(secret: &Secret) -> Result<Self, RecordError> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(DATA_KEY))
            .ok_or_else(|| RecordError::MissingData { name: name.clone() })?;
        serde_json::from_slice(&data.0).map_err(|source| RecordError::Invalid { name, source })
    }
}

/// Which of a record's secrets a presented secret matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    Current,
    Pending,
    Previous,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{generate::ClientSecret, hash};

    pub(crate) fn record(uid: &str) -> ClientRecord {
        ClientRecord {
            client_id: crate::credentials::generate::client_id(uid),
            app: AppKey {
                namespace: "tenant-a".into(),
                name: "agent".into(),
                uid: uid.into(),
            },
            current: Some(hash::hash(&ClientSecret::new("m2msec_current")).unwrap()),
            pending: None,
            previous: None,
            revision: 1,
            last_rotation_time: Timestamp::UNIX_EPOCH,
            handled_rotate_request: None,
            handled_revoke_request: None,
            organization_uid: None,
        }
    }

    #[test]
    fn a_cached_record_fits_a_256_byte_block() {
        // Every replica holds one `Arc<ClientRecord>` per app: with its two counters it is one
        // allocation, and jemalloc's classes go 256, 320, 384.
        assert!(std::mem::size_of::<ClientRecord>() + 16 <= 256);
    }

    #[test]
    fn round_trips_through_a_secret_without_plaintext() {
        let rec = record("0b0e2f4a-0000-4000-8000-000000000001");
        let secret = rec.to_secret("m2m-system").unwrap();
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some("m2m-client-0b0e2f4a-0000-4000-8000-000000000001")
        );
        let raw = String::from_utf8(secret.data.as_ref().unwrap()[DATA_KEY].0.clone()).unwrap();
        assert!(
            !raw.contains("m2msec_current"),
            "plaintext secret leaked into the record"
        );
        assert!(raw.contains("$argon2id$"));
        assert_eq!(ClientRecord::from_secret(&secret).unwrap(), rec);
    }

    #[test]
    fn previous_is_accepted_only_before_it_expires() {
        let mut rec = record("uid");
        let t = |s: i64| Timestamp::from_second(s).unwrap();
        rec.previous = Some(Box::new(Previous {
            hash: rec.current.clone().unwrap(),
            expires_at: t(100),
        }));
        let kinds = |now| rec.accepted_hashes(now).map(|(_, k)| k).collect::<Vec<_>>();
        assert_eq!(kinds(t(99)), [SecretKind::Current, SecretKind::Previous]);
        assert_eq!(kinds(t(100)), [SecretKind::Current]);
    }

    #[test]
    fn a_record_without_a_secret_accepts_only_its_retired_one() {
        let mut rec = record("uid");
        let t = |s: i64| Timestamp::from_second(s).unwrap();
        let retired = rec.current.take().unwrap();
        let json = String::from_utf8(
            rec.to_secret("ns").unwrap().data.unwrap()[DATA_KEY]
                .0
                .clone(),
        )
        .unwrap();
        assert!(!json.contains("argon2"), "{json}");
        assert_eq!(rec.accepted_hashes(t(0)).count(), 0);
        rec.previous = Some(Box::new(Previous {
            hash: retired,
            expires_at: t(100),
        }));
        let kinds = |now| rec.accepted_hashes(now).map(|(_, k)| k).collect::<Vec<_>>();
        assert_eq!(kinds(t(99)), [SecretKind::Previous]);
        assert!(kinds(t(100)).is_empty());
    }

    #[test]
    fn unreadable_records_are_errors_not_panics() {
        let mut secret = record("uid").to_secret("ns").unwrap();
        secret.data = Some(BTreeMap::from([(
            DATA_KEY.into(),
            ByteString(b"{".to_vec()),
        )]));
        assert!(matches!(
            ClientRecord::from_secret(&secret),
            Err(RecordError::Invalid { .. })
        ));
        secret.data = None;
        assert!(matches!(
            ClientRecord::from_secret(&secret),
            Err(RecordError::MissingData { .. })
        ));
    }
}
