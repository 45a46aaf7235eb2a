//! `charts/m2m-operator/crds/*.yaml` must be exactly what `m2m-operator crd` generates from the Rust types.

use std::{path::Path, process::Command};

#[test]
fn checked_in_crds_match_the_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
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

    let mut files: Vec<_> = std::fs::read_dir(root.join("charts/m2m-operator/crds"))
        .expect("charts/m2m-operator/crds/ exists")
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
        "charts/m2m-operator/crds/ is stale: regenerate with `cargo run -- crd --out-dir charts/m2m-operator/crds` and commit the result"
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
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
