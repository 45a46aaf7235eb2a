//! What the controller knows to hold a recorded secret: per app, the version of its Secret last
//! confirmed against a hash (by argon2id, or because this controller wrote it), so an unchanged
//! Secret is not argon2-verified again. `status.verifiedSecret` carries the same fact across
//! restarts as a [`marker`].

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use k8s_openapi::api::core::v1::Secret;

use crate::credentials::{hash::PhcHash, record::SecretKind};

/// One confirmed Secret version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub secret_uid: String,
    pub resource_version: String,
    /// The hash it matched, by digest (the memo holds one per app: 32 bytes, not the PHC string).
    pub hash: HashDigest,
    pub kind: SecretKind,
}

/// SHA-256 of a PHC string: names a hash without holding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashDigest([u8; 32]);

impl HashDigest {
    pub fn of(hash: &PhcHash) -> Self {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, hash.as_str().as_bytes());
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }
}

impl Verified {
    /// Its `status.verifiedSecret` value.
    pub fn marker(&self) -> String {
        marker_of(
            &self.secret_uid,
            &self.resource_version,
            self.kind,
            self.hash,
        )
    }

    /// Whether it is about exactly this version of a Secret.
    pub fn is_of(&self, secret: &Secret) -> bool {
        Some(&self.secret_uid) == secret.metadata.uid.as_ref()
            && Some(&self.resource_version) == secret.metadata.resource_version.as_ref()
    }

    /// Whether the hash it matched is `hash`.
    pub fn matched(&self, hash: &PhcHash) -> bool {
        self.hash == HashDigest::of(hash)
    }
}

/// The `status.verifiedSecret` value saying that this version (`uid`, `resource_version`) of an
/// app's Secret holds the secret of the record's `kind` hash. It names the hash by a digest (a
/// hash of the PHC string, never of the secret), so a new hash of that kind no longer matches.
pub fn marker(
    secret_uid: &str,
    resource_version: &str,
    kind: SecretKind,
    hash: &PhcHash,
) -> String {
    marker_of(secret_uid, resource_version, kind, HashDigest::of(hash))
}

fn marker_of(
    secret_uid: &str,
    resource_version: &str,
    kind: SecretKind,
    hash: HashDigest,
) -> String {
    let short: String = hash.0[..8].iter().map(|b| format!("{b:02x}")).collect();
    let kind = match kind {
        SecretKind::Current => "current",
        SecretKind::Pending => "pending",
        SecretKind::Previous => "previous",
    };
    format!("{secret_uid}/{resource_version}/{kind}/{short}")
}

/// Whether `marker` (a `status.verifiedSecret` value) is about exactly this version of a Secret,
/// whatever hash it names.
pub fn marker_names(marker: &str, secret: &Secret) -> bool {
    let (Some(uid), Some(version)) = (&secret.metadata.uid, &secret.metadata.resource_version)
    else {
        return false;
    };
    let mut parts = marker.splitn(3, '/');
    parts.next() == Some(uid.as_str()) && parts.next() == Some(version.as_str())
}

/// The memo, by app UID.
#[derive(Debug, Default)]
pub struct VerifiedSecrets(Mutex<HashMap<String, Verified>>);

impl VerifiedSecrets {
    /// Remembers that this version of an app's Secret holds the secret of `hash`.
    pub fn remember(&self, app_uid: &str, secret: &Secret, hash: &PhcHash, kind: SecretKind) {
        self.insert(app_uid, secret, HashDigest::of(hash), kind);
    }

    /// Remembers what `verified` says of an earlier version for this version of the Secret
    /// (the same secret, rewritten).
    pub fn carry_to(&self, app_uid: &str, verified: &Verified, secret: &Secret) {
        self.insert(app_uid, secret, verified.hash, verified.kind);
    }

    fn insert(&self, app_uid: &str, secret: &Secret, hash: HashDigest, kind: SecretKind) {
        let (Some(secret_uid), Some(resource_version)) = (
            secret.metadata.uid.clone(),
            secret.metadata.resource_version.clone(),
        ) else {
            return;
        };
        if let Ok(mut memo) = self.0.lock() {
            memo.insert(
                app_uid.to_owned(),
                Verified {
                    secret_uid,
                    resource_version,
                    hash,
                    kind,
                },
            );
        }
    }

    /// What is remembered for this app's Secret (of whichever version).
    pub fn get(&self, app_uid: &str) -> Option<Verified> {
        self.0.lock().ok()?.get(app_uid).cloned()
    }

    /// Forgets one app (it was deleted).
    pub fn forget(&self, app_uid: &str) {
        if let Ok(mut memo) = self.0.lock() {
            memo.remove(app_uid);
        }
    }

    /// Forgets every app not in `live`, so the memo does not grow with app churn.
    pub fn retain_live(&self, live: &HashSet<String>) {
        if let Ok(mut memo) = self.0.lock() {
            memo.retain(|uid, _| live.contains(uid));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phc(s: &str) -> PhcHash {
        serde_json::from_value(serde_json::json!(s)).unwrap()
    }

    #[test]
    fn the_marker_names_the_secret_version_and_the_hash_but_holds_neither_hash_nor_secret() {
        let hash = phc(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        );
        let other = phc("$argon2id$v=19$m=19456,t=2,p=1$b3RoZXI$b3RoZXI");
        let m = marker("uid-1", "42", SecretKind::Current, &hash);
        assert_eq!(m, marker("uid-1", "42", SecretKind::Current, &hash));
        assert!(m.starts_with("uid-1/42/current/"), "{m}");
        for (changed, what) in [
            (
                marker("uid-2", "42", SecretKind::Current, &hash),
                "Secret uid",
            ),
            (
                marker("uid-1", "43", SecretKind::Current, &hash),
                "resourceVersion",
            ),
            (marker("uid-1", "42", SecretKind::Previous, &hash), "kind"),
            (marker("uid-1", "42", SecretKind::Current, &other), "hash"),
        ] {
            assert_ne!(changed, m, "a different {what} gives a different marker");
        }
        for part in hash.as_str().split('$').filter(|p| p.len() > 8) {
            assert!(!m.contains(part), "no part of the hash in {m}");
        }
    }

    #[test]
    fn a_marker_names_one_secret_version() {
        let hash = phc("$argon2id$v=19$m=19456,t=2,p=1$b3RoZXI$b3RoZXI");
        let mut secret = Secret::default();
        secret.metadata.uid = Some("uid-1".into());
        secret.metadata.resource_version = Some("42".into());
        assert!(marker_names(
            &marker("uid-1", "42", SecretKind::Current, &hash),
            &secret
        ));
        for other in [
            marker("uid-1", "421", SecretKind::Current, &hash),
            marker("uid-2", "42", SecretKind::Current, &hash),
            "uid-1".to_owned(),
            String::new(),
        ] {
            assert!(!marker_names(&other, &secret), "{other}");
        }
    }

    #[test]
    fn the_memo_forgets_deleted_apps_and_keeps_live_ones() {
        let memo = VerifiedSecrets::default();
        let mut secret = Secret::default();
        secret.metadata.uid = Some("secret-uid".into());
        secret.metadata.resource_version = Some("1".into());
        let hash = phc("$argon2id$v=19$m=19456,t=2,p=1$b3RoZXI$b3RoZXI");
        for uid in ["uid-live", "uid-deleted", "uid-also-deleted"] {
            memo.remember(uid, &secret, &hash, SecretKind::Current);
        }
        memo.forget("uid-also-deleted");
        assert!(memo.get("uid-also-deleted").is_none());
        memo.retain_live(&HashSet::from(["uid-live".to_owned()]));
        assert!(memo.get("uid-live").is_some(), "a live app keeps its memo");
        assert!(memo.get("uid-deleted").is_none(), "a deleted app's is gone");
        let live = memo.get("uid-live").unwrap();
        assert!(live.is_of(&secret));
        assert!(live.matched(&hash));
        let other = phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$b3RoZXI");
        assert!(
            !live.matched(&other),
            "another hash of the same secret is not it"
        );
        assert_eq!(
            live.marker(),
            marker("secret-uid", "1", SecretKind::Current, &hash)
        );
    }
}
