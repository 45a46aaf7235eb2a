//! The example workload's ConfigMap carries exactly examples/workload/get-token.sh.

use std::path::Path;

#[test]
fn the_workload_configmap_holds_the_script() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let script = std::fs::read_to_string(root.join("workload/get-token.sh")).expect("script");
    let manifest = std::fs::read_to_string(root.join("30-workload.yaml")).expect("manifest");
    let configmap = serde_yaml::Deserializer::from_str(&manifest)
        .map(|doc| <serde_yaml::Value as serde::Deserialize>::deserialize(doc).expect("YAML"))
        .find(|doc| doc["kind"] == "ConfigMap")
        .expect("a ConfigMap in 30-workload.yaml");
    assert_eq!(
        configmap["data"]["get-token.sh"].as_str(),
        Some(script.as_str()),
        "examples/30-workload.yaml's ConfigMap differs from examples/workload/get-token.sh"
    );
}
