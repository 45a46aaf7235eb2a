//! Size limits on the parts of both CRDs that come from Kubernetes types without limits of their
//! own (`LabelSelector`, `Condition`), added to the generated schema. Every list, map and string
//! of both kinds is bounded, so one object can only be so large in every replica's cache (the
//! fields of our own types carry theirs as `#[schemars]` attributes in `src/api/`; the test
//! below fails on any that lacks one).
//!
//! | kind | field | limit | why that much |
//! |---|---|---|---|
//! | Organization | `spec.namespaceSelector.matchLabels` | 32 entries, keys qualified names (CEL), values 63 | a label key and value as Kubernetes allows them |
//! | Organization | `spec.namespaceSelector.matchExpressions` | 16 expressions | selectors of real tenants have one or two |
//! | Organization | `...matchExpressions[].key` | 317 characters | a qualified name: 253 prefix + `/` + 63 |
//! | Organization | `...matchExpressions[].operator` | 16 characters | `In`, `NotIn`, `Exists`, `DoesNotExist` |
//! | Organization | `...matchExpressions[].values` | 64 values of 63 characters | label values |
//! | both | `status.conditions[].type` / `.status` / `.reason` / `.message` | 316 / 16 / 1024 / 32768 | the limits of `metav1.Condition` in Kubernetes' own APIs |
//! | both | `status.conditions[].lastTransitionTime` | 64 characters | an RFC 3339 time |

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    ValidationRule,
};

use crate::api::validation::LABEL_KEYS_RULE;

/// One limit added to the schema node at a path (`.` between properties, `[]` for the items of
/// a list, `{}` for the values of a map).
enum Limit {
    Length(i64),
    Items(i64),
    Properties(i64),
    Rule(&'static str, &'static str),
}

const CONDITION: &[(&str, Limit)] = &[
    ("status.conditions[].type", Limit::Length(316)),
    ("status.conditions[].status", Limit::Length(16)),
    ("status.conditions[].reason", Limit::Length(1024)),
    ("status.conditions[].message", Limit::Length(32768)),
    ("status.conditions[].lastTransitionTime", Limit::Length(64)),
];

const SELECTOR_KEYS_MESSAGE: &str = "namespaceSelector.matchLabels: every key must be a qualified name: an optional DNS subdomain of at most 253 characters and '/', then at most 63 characters of [A-Za-z0-9-_.] beginning and ending with a letter or digit";

const ORGANIZATION: &[(&str, Limit)] = &[
    ("spec.namespaceSelector.matchLabels", Limit::Properties(32)),
    (
        "spec.namespaceSelector.matchLabels",
        Limit::Rule(LABEL_KEYS_RULE, SELECTOR_KEYS_MESSAGE),
    ),
    ("spec.namespaceSelector.matchLabels{}", Limit::Length(63)),
    ("spec.namespaceSelector.matchExpressions", Limit::Items(16)),
    (
        "spec.namespaceSelector.matchExpressions[].key",
        Limit::Length(317),
    ),
    (
        "spec.namespaceSelector.matchExpressions[].operator",
        Limit::Length(16),
    ),
    (
        "spec.namespaceSelector.matchExpressions[].values",
        Limit::Items(64),
    ),
    (
        "spec.namespaceSelector.matchExpressions[].values[]",
        Limit::Length(63),
    ),
];

/// Adds the limits of the table above to one CRD.
pub fn apply(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let own: &[(&str, Limit)] = match crd.spec.names.kind.as_str() {
        "Organization" => ORGANIZATION,
        _ => &[],
    };
    for version in &mut crd.spec.versions {
        let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        for (path, limit) in CONDITION.iter().chain(own) {
            // A path the types no longer have is a table out of date: the test below says so.
            if let Some(node) = node_at(root, path) {
                set(node, limit);
            }
        }
    }
    crd
}

fn set(node: &mut JSONSchemaProps, limit: &Limit) {
    match *limit {
        Limit::Length(n) => node.max_length = Some(n),
        Limit::Items(n) => node.max_items = Some(n),
        Limit::Properties(n) => node.max_properties = Some(n),
        Limit::Rule(rule, message) => {
            node.x_kubernetes_validations
                .get_or_insert_with(Vec::new)
                .push(ValidationRule {
                    rule: rule.to_owned(),
                    message: Some(message.to_owned()),
                    ..Default::default()
                });
        }
    }
}

/// The schema node at `path`.
fn node_at<'a>(root: &'a mut JSONSchemaProps, path: &str) -> Option<&'a mut JSONSchemaProps> {
    let mut node = root;
    for segment in path.split('.') {
        let (name, rest) = segment
            .find(['[', '{'])
            .map_or((segment, ""), |i| segment.split_at(i));
        node = node.properties.as_mut()?.get_mut(name)?;
        for marker in rest.as_bytes().chunks(2) {
            node = match marker {
                b"[]" => match node.items.as_mut()? {
                    JSONSchemaPropsOrArray::Schema(s) => s.as_mut(),
                    JSONSchemaPropsOrArray::Schemas(_) => return None,
                },
                b"{}" => match node.additional_properties.as_mut()? {
                    JSONSchemaPropsOrBool::Schema(s) => s.as_mut(),
                    JSONSchemaPropsOrBool::Bool(_) => return None,
                },
                _ => return None,
            };
        }
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every list, map and string of both CRDs, as generated, with what bounds it missing.
    fn unbounded(node: &JSONSchemaProps, path: &str, found: &mut Vec<String>) {
        if node.x_kubernetes_preserve_unknown_fields == Some(true) {
            found.push(format!("{path}: x-kubernetes-preserve-unknown-fields"));
        }
        match node.type_.as_deref() {
            Some("string") if node.max_length.is_none() && node.enum_.is_none() => {
                found.push(format!("{path}: string without maxLength"));
            }
            Some("array") if node.max_items.is_none() => {
                found.push(format!("{path}: list without maxItems"));
            }
            Some("object") if node.additional_properties.is_some() => {
                if node.max_properties.is_none() {
                    found.push(format!("{path}: map without maxProperties"));
                }
                // A map's keys have no schema: only a CEL rule bounds them.
                if node
                    .x_kubernetes_validations
                    .as_ref()
                    .is_none_or(Vec::is_empty)
                {
                    found.push(format!("{path}: map without a rule on its keys"));
                }
            }
            _ => {}
        }
        for (name, child) in node.properties.iter().flatten() {
            unbounded(child, &format!("{path}.{name}"), found);
        }
        if let Some(JSONSchemaPropsOrArray::Schema(items)) = &node.items {
            unbounded(items, &format!("{path}[]"), found);
        }
        if let Some(JSONSchemaPropsOrBool::Schema(values)) = &node.additional_properties {
            unbounded(values, &format!("{path}{{}}"), found);
        }
    }

    #[test]
    fn every_list_map_and_string_of_both_crds_is_bounded() {
        let mut found = Vec::new();
        for crd in crate::crd::all() {
            for version in &crd.spec.versions {
                let schema = version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .expect("a schema");
                // `metadata` is the API server's (its own limits apply), the rest is ours.
                for (name, child) in schema.properties.iter().flatten() {
                    if name != "metadata" {
                        unbounded(
                            child,
                            &format!("{}.{name}", crd.spec.names.kind),
                            &mut found,
                        );
                    }
                }
            }
        }
        assert!(found.is_empty(), "unbounded fields:\n{}", found.join("\n"));
    }

    #[test]
    fn every_path_of_the_table_exists() {
        for crd in [
            <crate::api::M2MApp as kube::CustomResourceExt>::crd(),
            <crate::api::Organization as kube::CustomResourceExt>::crd(),
        ] {
            let kind = crd.spec.names.kind.clone();
            let own: &[(&str, Limit)] = if kind == "Organization" {
                ORGANIZATION
            } else {
                &[]
            };
            let mut crd = crd;
            let root = crd.spec.versions[0]
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
                .expect("a schema");
            for (path, _) in CONDITION.iter().chain(own) {
                assert!(node_at(root, path).is_some(), "{kind}: no {path}");
            }
        }
    }
}
