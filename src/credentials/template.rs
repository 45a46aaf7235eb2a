//! Which label and annotation keys an M2MApp's `secretTemplate` may put on its Secret. Other
//! tools act on Secrets by their labels and annotations: a replicator's annotation (for example
//! `replicator.v1.mittwald.de/replicate-to`) would copy the client secret into namespaces its
//! author can read, so an app editor without Secret read access could read it there. Only the
//! keys the operator is configured to allow pass (`--secret-template-allowed-keys`); keys under
//! the prefixes Kubernetes and the operator reserve never do.

use crate::api::SecretTemplate;

/// The default allowed keys: unprefixed keys, the recommended `app.kubernetes.io/` labels and
/// the reloader annotations that restart workloads when a Secret changes.
pub const DEFAULT_ALLOWED: &[&str] = &[
    "*",
    "app.kubernetes.io/*",
    "reloader.stakater.com/*",
    "secret.reloader.stakater.com/*",
];

/// Prefixes no template may use, whatever the configuration: the operator's own keys and the
/// ones Kubernetes reserves for itself.
pub const RESERVED_PREFIXES: &[&str] = &["m2m.dev/", "kubernetes.io/", "k8s.io/"];

/// The allowed key patterns. In a pattern, `*` stands for any run of characters without `/`:
/// `*` is every unprefixed key, `example.com/*` every key with that prefix, `*/*` every key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateKeys {
    patterns: Vec<String>,
}

impl Default for TemplateKeys {
    fn default() -> Self {
        Self::new(DEFAULT_ALLOWED.iter().map(|p| (*p).to_owned()))
    }
}

impl TemplateKeys {
    pub fn new(patterns: impl IntoIterator<Item = String>) -> Self {
        Self {
            patterns: patterns.into_iter().filter(|p| !p.is_empty()).collect(),
        }
    }

    /// Whether a template may set `key`.
    pub fn allows(&self, key: &str) -> bool {
        !RESERVED_PREFIXES.iter().any(|p| key.starts_with(p))
            && self.patterns.iter().any(|p| matches(p, key))
    }

    /// The keys of `template` that are not allowed (labels and annotations), sorted.
    pub fn refused(&self, template: Option<&SecretTemplate>) -> Vec<String> {
        let Some(t) = template else {
            return Vec::new();
        };
        let mut refused: Vec<String> = t
            .labels
            .keys()
            .chain(t.annotations.keys())
            .filter(|k| !self.allows(k))
            .cloned()
            .collect();
        refused.sort();
        refused.dedup();
        refused
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// Glob match where `*` matches any run of characters other than `/`.
fn matches(pattern: &str, key: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == key,
        Some((head, rest)) => {
            let Some(tail) = key.strip_prefix(head) else {
                return false;
            };
            // `*` takes 0..n characters up to the next `/` (never across it).
            let limit = tail.find('/').unwrap_or(tail.len());
            (0..=limit).any(|n| matches(rest, &tail[n..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn stars_do_not_cross_slashes() {
        assert!(matches("*", "team"));
        assert!(!matches("*", "example.com/team"));
        assert!(matches("*/*", "example.com/team"));
        assert!(matches("example.com/*", "example.com/team"));
        assert!(!matches("example.com/*", "evil.com/example.com/team"));
        assert!(matches("*.example.com/*", "a.example.com/x"));
        assert!(!matches("*.example.com/*", "a.evil.com/x"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
    }

    #[test]
    fn replicators_and_reserved_keys_are_refused_by_default() {
        let keys = TemplateKeys::default();
        for ok in [
            "team",
            "app.kubernetes.io/part-of",
            "reloader.stakater.com/match",
            "secret.reloader.stakater.com/reload",
        ] {
            assert!(keys.allows(ok), "{ok}");
        }
        for refused in [
            "replicator.v1.mittwald.de/replicate-to",
            "reflector.v1.k8s.emberstack.com/reflection-allowed",
            "kubed.appscode.com/sync",
            "kubernetes.io/service-account.name",
            "m2m.dev/revision",
        ] {
            assert!(!keys.allows(refused), "{refused}");
        }
        let everything = TemplateKeys::new(["*".to_owned(), "*/*".to_owned()]);
        assert!(everything.allows("replicator.v1.mittwald.de/replicate-to"));
        assert!(
            !everything.allows("k8s.io/anything"),
            "reserved, whatever the patterns"
        );
        let template = SecretTemplate {
            labels: BTreeMap::from([("team".into(), "a".into())]),
            annotations: BTreeMap::from([
                ("replicator.v1.mittwald.de/replicate-to".into(), "*".into()),
                ("m2m.dev/revision".into(), "9".into()),
            ]),
        };
        assert_eq!(
            keys.refused(Some(&template)),
            ["m2m.dev/revision", "replicator.v1.mittwald.de/replicate-to"]
        );
        assert!(keys.refused(None).is_empty());
    }
}
