//! `crds/*.yaml` must be exactly what `m2m-operator crd` generates from the Rust types.

use std::{path::Path, process::Command};

#[test]
fn checked_in_crds_match_the_types() {
    let root = m2m_operator_testkit::install::repo_root();
    let out = Command::new(env!("CARGO_BIN_EXE_m2m-operator"))
        .arg("crd")
        .output()
        .expect("run m2m-operator crd");
    assert!(
        out.status.success(),
        "m2m-operator crd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("utf-8 output");

    let mut files: Vec<_> = std::fs::read_dir(root.join("crds"))
        .expect("crds/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let checked_in: String = files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read CRD file"))
        .collect();

    assert!(
        generated == checked_in,
        "crds/ is stale: regenerate with `cargo run -- crd --out-dir crds` and commit the result"
    );
}

#[test]
fn crd_out_dir_writes_one_file_per_kind() {
    let dir = std::env::temp_dir().join(format!("m2m-crd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let status = Command::new(env!("CARGO_BIN_EXE_m2m-operator"))
        .args(["crd", "--out-dir"])
        .arg(&dir)
        .status()
        .expect("run m2m-operator crd --out-dir");
    assert!(status.success());
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("read temp dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["m2mapp.yaml", "organization.yaml"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_crd_reference_matches_the_types() {
    let root = m2m_operator_testkit::install::repo_root();
    let out = Command::new(env!("CARGO_BIN_EXE_m2m-operator"))
        .args(["crd", "--reference"])
        .output()
        .expect("run m2m-operator crd --reference");
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).expect("utf-8 output");
    let checked_in =
        std::fs::read_to_string(root.join("docs/crd-reference.md")).expect("docs/crd-reference.md");
    assert!(
        generated == checked_in,
        "docs/crd-reference.md is stale: regenerate with `{}` and commit the result",
        m2m_operator::crd_reference::REGENERATE
    );
}

/// The chart installs the same files users `kubectl apply -f crds/`: its `crds/` is the link
/// `../../crds`, and a copy that drifts from the generated files fails here (and Helm's own view
/// of them is compared in `hack/chart.sh check`).
#[test]
fn the_chart_installs_the_same_crd_files() {
    let root = m2m_operator_testkit::install::repo_root();
    let read = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .map(|p| {
                let name = p
                    .file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned();
                (name, std::fs::read(&p).expect("read CRD file"))
            })
            .collect();
        files.sort();
        files
    };
    let top = read(&root.join("crds"));
    let chart = read(&root.join("charts/m2m-operator/crds"));
    assert!(!top.is_empty(), "crds/ holds the CRDs");
    assert!(
        top == chart,
        "charts/m2m-operator/crds differs from crds/: it must stay the link ../../crds"
    );
}
