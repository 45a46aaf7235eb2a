//! The example workloads' ConfigMaps carry exactly examples/workload/get-token.sh and
//! get-token-keyless.sh.

#![allow(clippy::expect_used)] // a test helper: a panic is the failure report

#[test]
fn the_workload_configmap_holds_the_script() {
    check("30-workload.yaml", "get-token.sh");
}

#[test]
fn the_keyless_workload_configmap_holds_its_script() {
    check("40-keyless-workload.yaml", "get-token-keyless.sh");
}

fn check(manifest_file: &str, script_file: &str) {
    let root = m2m_operator_testkit::install::repo_root().join("examples");
    let script = std::fs::read_to_string(root.join("workload").join(script_file)).expect("script");
    let manifest = std::fs::read_to_string(root.join(manifest_file)).expect("manifest");
    let configmap = serde_yaml::Deserializer::from_str(&manifest)
        .map(|doc| <serde_yaml::Value as serde::Deserialize>::deserialize(doc).expect("YAML"))
        .find(|doc| doc["kind"] == "ConfigMap")
        .expect("a ConfigMap");
    assert_eq!(
        configmap["data"][script_file].as_str(),
        Some(script.as_str()),
        "examples/{manifest_file}'s ConfigMap differs from examples/workload/{script_file}"
    );
}
