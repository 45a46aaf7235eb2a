//! Where global apps (no `spec.organizationRef`) may live. Their tokens carry no `org_code` and
//! any scope their author writes: the power the reference gives admin scripts and internal
//! automation. So they are allowed only in namespaces the operator is configured to trust, by
//! name or by labels; secure by default: only the operator's own namespace.

use std::collections::BTreeMap;

/// The namespaces global apps are allowed in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GlobalApps {
    /// By name.
    pub namespaces: Vec<String>,
    /// By labels: a namespace carrying every one of these labels (empty: none by label).
    pub labels: BTreeMap<String, String>,
    /// In every namespace (tests and fuzzing only; the operator has no flag for it).
    pub anywhere: bool,
}

impl GlobalApps {
    /// Global apps only in `namespace` (the operator's own).
    pub fn only(namespace: &str) -> Self {
        Self {
            namespaces: vec![namespace.to_owned()],
            ..Self::default()
        }
    }

    /// Global apps anywhere (tests and fuzzing only).
    pub fn anywhere() -> Self {
        Self {
            anywhere: true,
            ..Self::default()
        }
    }

    /// Whether a global app in `namespace` (with these labels, `None` if unknown) is allowed.
    pub fn allows(&self, namespace: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
        if self.anywhere || self.namespaces.iter().any(|n| n == namespace) {
            return true;
        }
        !self.labels.is_empty()
            && labels.is_some_and(|have| self.labels.iter().all(|(k, v)| have.get(k) == Some(v)))
    }

    /// How the policy reads in a condition message.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.namespaces.is_empty() {
            parts.push(format!("namespaces {}", self.namespaces.join(", ")));
        }
        if !self.labels.is_empty() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            parts.push(format!("namespaces labelled {}", labels.join(",")));
        }
        if parts.is_empty() {
            "no namespace".to_owned()
        } else {
            parts.join(" and ")
        }
    }
}

/// Parses `--global-app-namespace-labels`: `key=value` pairs separated by commas.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(format!("{pair:?} is not key=value")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_name_or_by_every_label() {
        let only = GlobalApps::only("m2m-system");
        assert!(only.allows("m2m-system", None));
        assert!(!only.allows("tenant", None));
        let labelled = GlobalApps {
            namespaces: vec!["platform".into()],
            labels: parse_labels("team=platform, tier=automation").unwrap(),
            anywhere: false,
        };
        let both = BTreeMap::from([
            ("team".to_owned(), "platform".to_owned()),
            ("tier".to_owned(), "automation".to_owned()),
            ("other".to_owned(), "x".to_owned()),
        ]);
        let one = BTreeMap::from([("team".to_owned(), "platform".to_owned())]);
        assert!(labelled.allows("platform", None));
        assert!(labelled.allows("anything", Some(&both)));
        assert!(!labelled.allows("anything", Some(&one)), "every label");
        assert!(!labelled.allows("anything", None));
        assert!(GlobalApps::default().describe().contains("no namespace"));
        assert!(
            labelled
                .describe()
                .contains("team=platform,tier=automation")
        );
        assert!(GlobalApps::anywhere().allows("x", None));
        assert!(parse_labels("novalue").is_err());
        assert_eq!(parse_labels("").unwrap(), BTreeMap::new());
    }
}
