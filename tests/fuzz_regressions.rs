//! Replays the fuzz seeds and every kept regression input (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzz targets on stable Rust, so a fixed crash
//! stays fixed even where nightly and cargo-fuzz are not installed.

#[test]
fn every_seed_and_regression_input_passes_its_target() {
    let root = m2m_operator_testkit::install::repo_root().join("fuzz");
    let mut replayed = 0;
    for (target, run) in m2m_operator_testkit::fuzzing::TARGETS {
        for dir in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("dir entry").path();
                if path.file_name().is_some_and(|n| n == ".gitkeep") {
                    continue;
                }
                let data = std::fs::read(&path).expect("read input");
                run(&data);
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 3, "the seeds were found ({replayed} inputs)");
}
