//! The CRD reference (`docs/crd-reference.md`), generated from the CRDs' OpenAPI schemas, whose
//! descriptions are the Rust doc comments of [`crate::api`]: one table row per field, with its
//! type, whether it is required, its default, its validation and its description.

use std::fmt::Write;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// The command that regenerates the reference; named in its header.
pub const REGENERATE: &str = "cargo run --quiet -- crd --reference > docs/crd-reference.md";

/// The Markdown reference of these CRDs.
pub fn markdown(crds: &[CustomResourceDefinition]) -> String {
    let mut out = format!(
        "# CRD reference\n\n<!-- Generated from the Rust types in src/api/ by `{REGENERATE}`; \
         do not edit. -->\n\nEvery field of the custom resources, generated from the same schemas \
         the API server validates with (`kubectl explain` shows the same text).\n"
    );
    for crd in crds {
        for version in &crd.spec.versions {
            let Some(schema) = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
            else {
                continue;
            };
            let names = &crd.spec.names;
            let short = names
                .short_names
                .as_ref()
                .map(|s| format!(", short name `{}`", s.join("`, `")))
                .unwrap_or_default();
            let _ = write!(
                out,
                "\n## {kind}\n\n`{group}/{version}`, {scope}{short}.\n",
                kind = names.kind,
                group = crd.spec.group,
                version = version.name,
                scope = crd.spec.scope.to_lowercase(),
            );
            if let Some(text) = &schema.description {
                let _ = write!(out, "\n{}\n", text.trim());
            }
            out.push_str("\n| Field | Type | Required | Description |\n|---|---|---|---|\n");
            let mut rows = Vec::new();
            for (name, child) in schema.properties.iter().flatten() {
                if matches!(name.as_str(), "spec" | "status") {
                    let required = is_required(schema, name);
                    walk(name, child, required, &mut rows);
                }
            }
            out.push_str(&rows.concat());
        }
    }
    out
}

fn is_required(parent: &JSONSchemaProps, name: &str) -> bool {
    parent
        .required
        .as_ref()
        .is_some_and(|r| r.iter().any(|n| n == name))
}

fn items(schema: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match schema.items.as_ref()? {
        JSONSchemaPropsOrArray::Schema(s) => Some(s),
        JSONSchemaPropsOrArray::Schemas(_) => None,
    }
}

fn map_values(schema: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match schema.additional_properties.as_ref()? {
        JSONSchemaPropsOrBool::Schema(s) => Some(s),
        JSONSchemaPropsOrBool::Bool(_) => None,
    }
}

fn type_name(schema: &JSONSchemaProps) -> String {
    if let Some(item) = items(schema) {
        return format!("[]{}", type_name(item));
    }
    if let Some(value) = map_values(schema) {
        return format!("map[string]{}", type_name(value));
    }
    match (schema.type_.as_deref(), schema.format.as_deref()) {
        (Some(t), Some(f)) => format!("{t} ({f})"),
        (Some(t), None) => t.to_owned(),
        (None, _) if schema.x_kubernetes_int_or_string == Some(true) => "int-or-string".into(),
        (None, _) => "any".into(),
    }
}

/// Validation and default, as short notes appended to the description.
fn notes(schema: &JSONSchemaProps) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(default) = &schema.default {
        notes.push(format!("Default: `{}`.", default.0));
    }
    if let Some(values) = &schema.enum_ {
        let values: Vec<String> = values.iter().map(|v| format!("`{}`", v.0)).collect();
        notes.push(format!("One of {}.", values.join(", ")));
    }
    if let Some(pattern) = &schema.pattern {
        notes.push(format!("Pattern: `{pattern}`."));
    }
    let bound = |what: &str, min: Option<String>, max: Option<String>| match (min, max) {
        (Some(a), Some(b)) => Some(format!("{what} {a} to {b}.")),
        (Some(a), None) => Some(format!("{what} at least {a}.")),
        (None, Some(b)) => Some(format!("{what} at most {b}.")),
        (None, None) => None,
    };
    notes.extend(bound(
        "Length",
        schema.min_length.map(|v| v.to_string()),
        schema.max_length.map(|v| v.to_string()),
    ));
    notes.extend(bound(
        "Items",
        schema.min_items.map(|v| v.to_string()),
        schema.max_items.map(|v| v.to_string()),
    ));
    notes.extend(bound(
        "Value",
        schema.minimum.map(|v| v.to_string()),
        schema.maximum.map(|v| v.to_string()),
    ));
    for rule in schema.x_kubernetes_validations.iter().flatten() {
        let message = rule.message.as_deref().unwrap_or("must hold");
        notes.push(format!("Rule `{}`: {message}.", rule.rule));
    }
    notes
}

fn cell(text: &str) -> String {
    text.trim()
        .replace('|', "\\|")
        .replace("\n\n", "<br><br>")
        .replace('\n', " ")
}

fn walk(path: &str, schema: &JSONSchemaProps, required: bool, rows: &mut Vec<String>) {
    let mut description = schema.description.clone().unwrap_or_default();
    for note in notes(schema) {
        if !description.is_empty() {
            description.push(' ');
        }
        description.push_str(&note);
    }
    rows.push(format!(
        "| `{path}` | {} | {} | {} |\n",
        cell(&type_name(schema)),
        if required { "yes" } else { "" },
        cell(&description)
    ));
    // Fields of objects, of list items (`path[]`) and of map values (`path.<key>`).
    let (object, prefix) = if let Some(item) = items(schema) {
        (item, format!("{path}[]"))
    } else if let Some(value) = map_values(schema) {
        (value, format!("{path}.<key>"))
    } else {
        (schema, path.to_owned())
    };
    for (name, child) in object.properties.iter().flatten() {
        walk(
            &format!("{prefix}.{name}"),
            child,
            is_required(object, name),
            rows,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_both_kinds_has_a_row_with_its_description() {
        let text = markdown(&crate::crd::all());
        assert!(text.contains("## M2MApp\n\n`m2m.dev/v1alpha1`, namespaced, short name `m2m`."));
        assert!(text.contains("## Organization\n"));
        let code = text
            .lines()
            .find(|l| l.starts_with("| `spec.code` |"))
            .expect("Organization spec.code row");
        assert!(code.contains("| string |  |"), "optional: {code}");
        assert!(code.contains("Pattern:"), "{code}");
        let audiences = text
            .lines()
            .find(|l| l.starts_with("| `spec.audiences` |"))
            .expect("M2MApp spec.audiences row");
        assert!(audiences.contains("| []string | yes |"), "{audiences}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("| `status.conditions[].type` |")),
            "list item fields are documented"
        );
        // No row without a description.
        let undocumented: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("| `") && l.ends_with("|  |"))
            .collect();
        assert!(undocumented.is_empty(), "{undocumented:?}");
    }
}
