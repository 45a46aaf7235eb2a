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
    Ok(format!("---\n{}", serde_yaml::to_string(crd)?))
}

/// The file under `crds/` each CRD is written to.
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
