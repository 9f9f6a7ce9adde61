//! `src/fhir/structure/r4.txt` is what `scripts/generate-r4-definitions` makes from the pinned
//! examples package: this fails when the committed file and the script disagree.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_committed_r4_definitions_are_the_generated_ones() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if !root
        .join(".cache/test-data/hl7.fhir.r4.examples-4.0.1/package")
        .is_dir()
    {
        assert!(
            std::env::var_os("TEST_REQUIRE_DATA").is_none(),
            "the R4 examples package is missing: run scripts/fetch-test-data"
        );
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let generated = out.path().join("r4.txt");
    let status = Command::new(root.join("scripts/generate-r4-definitions"))
        .env("R4_DEFINITIONS_OUT", &generated)
        .status()
        .unwrap();
    assert!(status.success());
    let committed = std::fs::read_to_string(root.join("src/fhir/structure/r4.txt")).unwrap();
    assert!(
        std::fs::read_to_string(&generated).unwrap() == committed,
        "src/fhir/structure/r4.txt is stale: run scripts/generate-r4-definitions"
    );
}
