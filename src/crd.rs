//! The CustomResourceDefinitions, generated from the Rust types in [`crate::api`].

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

use crate::api::{M2MApp, Organization};

mod limits;

/// Both CRDs, in the order of their file names under `crds/` (so `m2m-operator crd`
/// equals `cat crds/*.yaml`).
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![M2MApp::crd(), Organization::crd()]
        .into_iter()
        .map(limits::apply)
        .map(unwrap_descriptions)
        .collect()
}

/// Joins the lines of each paragraph of every schema description, so `kubectl explain` wraps
/// the text itself instead of showing the line breaks of the Rust doc comments.
fn unwrap_descriptions(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            unwrap_schema(schema);
        }
    }
    crd
}

fn unwrap_schema(schema: &mut JSONSchemaProps) {
    if let Some(text) = schema.description.as_mut() {
        *text = join_paragraph_lines(text);
    }
    let children = schema
        .properties
        .iter_mut()
        .flat_map(|p| p.values_mut())
        .chain(schema.items.as_mut().and_then(|items| match items {
            JSONSchemaPropsOrArray::Schema(s) => Some(s.as_mut()),
            JSONSchemaPropsOrArray::Schemas(_) => None,
        }));
    for child in children {
        unwrap_schema(child);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(s)) = schema.additional_properties.as_mut() {
        unwrap_schema(s);
    }
}

/// `"a\nb\n\nc"` becomes `"a b\n\nc"`: single line breaks inside a paragraph become spaces.
fn join_paragraph_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|para| para.lines().map(str::trim).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// A CRD as the YAML document checked in under `crds/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    let text = serde_yaml::to_string(crd)?;
    Ok(format!("---\n{}", quote_boolean_keys(&text)))
}

/// The file under `crds/` each CRD is written to.
/// serde_yaml writes YAML 1.2, where a key `y` or `n` is a string; kubectl and Helm read YAML
/// 1.1, where it is a boolean (the JWK members `y` and `n` of `spec.clientAuthentication.jwks`
/// would turn into `true` and `false`). Such keys are quoted.
fn quote_boolean_keys(text: &str) -> String {
    const YAML11_BOOLEANS: [&str; 22] = [
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
        "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
    ];
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            match trimmed.strip_suffix(':') {
                Some(key) if YAML11_BOOLEANS.contains(&key) => format!("{indent}'{key}':"),
                _ => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if text.ends_with('\n') { "\n" } else { "" }
}

pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!(
        "{}.yaml",
        crd.spec
            .names
            .singular
            .as_deref()
            .unwrap_or(&crd.spec.names.plural)
    )
}

/// Both CRDs as one multi-document YAML stream, as `m2m-operator crd` prints it.
pub fn all_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in all() {
        out.push_str(&to_yaml(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_yaml_1_1_reads_as_booleans_are_quoted() {
        let yaml = all_yaml().unwrap();
        assert!(
            yaml.contains("'y':") && yaml.contains("'n':"),
            "the JWK members"
        );
        assert!(!yaml.lines().any(|l| matches!(l.trim(), "y:" | "n:")));
        assert_eq!(
            quote_boolean_keys("a:\n  y:\n    type: string\n"),
            "a:\n  'y':\n    type: string\n"
        );
    }

    #[test]
    fn paragraphs_keep_breaks_lines_do_not() {
        assert_eq!(
            join_paragraph_lines("one\ntwo\n\nthree\nfour"),
            "one two\n\nthree four"
        );
        assert_eq!(join_paragraph_lines("single"), "single");
    }

    #[test]
    fn descriptions_have_no_hard_line_breaks() {
        let yaml = all_yaml().expect("CRDs serialize");
        let crds: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&yaml)
            .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
            .collect();
        fn walk(v: &serde_json::Value, path: &str, bad: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(map) => {
                    for (k, v) in map {
                        if k == "description"
                            && v.as_str()
                                .is_some_and(|s| s.replace("\n\n", "").contains('\n'))
                        {
                            bad.push(path.to_owned());
                        }
                        walk(v, &format!("{path}.{k}"), bad);
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, path, bad)),
                _ => {}
            }
        }
        let mut bad = Vec::new();
        crds.iter().for_each(|c| walk(c, "", &mut bad));
        assert!(bad.is_empty(), "descriptions with line breaks at {bad:?}");
        assert_eq!(crds.len(), 2);
    }
}
