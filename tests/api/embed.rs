//! `prognostics embed image`: real weights (scripts/fetch-models) on real DICOM files.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::helpers::pydicom_path;

#[test]
fn embed_image_prints_one_embedding_per_file_and_fails_on_bad_files() {
    let weights = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/weights/efficientnet-lite0-57934424.pth");
    if !weights.is_file() {
        assert!(
            std::env::var_os("TEST_REQUIRE_DATA").is_none(),
            "model weights missing: run scripts/fetch-models"
        );
        eprintln!("skipping: run scripts/fetch-models");
        return;
    }
    let (Some(ct), Some(us)) = (
        pydicom_path("CT_small.dcm"),
        pydicom_path("MR_small_RLE.dcm"),
    ) else {
        return;
    };
    let not_dicom = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_dicom.path(), "text").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_prognostics"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["embed", "image"])
        .arg(&ct)
        .arg(&us)
        .arg(not_dicom.path())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "a bad file fails the command"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in &lines {
        assert_eq!(line["model"], "efficientnet-lite0");
        assert_eq!(line["frames"], 1);
        let embedding = line["embedding"].as_array().unwrap();
        assert_eq!(embedding.len(), 1280);
        assert!(embedding.iter().any(|v| v.as_f64().unwrap() > 0.0));
    }
    assert_ne!(lines[0]["embedding"], lines[1]["embedding"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a DICOM Part 10 file"), "{stderr}");
}
