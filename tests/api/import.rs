//! `prognostics import`: files and folders stored as STOW-RS would store them, with a summary.

use std::process::Command;

use crate::helpers::{fresh_postgres_database, pydicom_file, spawn_app_with};

#[tokio::test]
async fn import_stores_instances_skips_other_files_and_reports_failures() {
    let (Some(ct), Some(dicomdir), Some(broken_jpeg)) = (
        pydicom_file("CT_small.dcm"),
        pydicom_file("dicomdirtests/DICOMDIR"),
        // A valid data set whose JPEG scan header no decoder accepts.
        pydicom_file("JPEG-lossy.dcm"),
    ) else {
        return;
    };
    let input = tempfile::tempdir().unwrap();
    std::fs::create_dir(input.path().join("series")).unwrap();
    std::fs::write(input.path().join("series/ct.dcm"), &ct).unwrap();
    std::fs::write(input.path().join("broken-jpeg.dcm"), &broken_jpeg).unwrap();
    std::fs::write(input.path().join("DICOMDIR"), &dicomdir).unwrap();
    std::fs::write(input.path().join("README.txt"), "not an image").unwrap();
    std::fs::write(input.path().join("series/cut.dcm"), &ct[..ct.len() / 2]).unwrap();
    let data = tempfile::tempdir().unwrap();
    let database = fresh_postgres_database().await;

    let mut command = Command::new(env!("CARGO_BIN_EXE_prognostics"));
    command.arg("--data-dir").arg(data.path());
    if let Some(url) = &database {
        command.arg("--database").arg(url);
    }
    let output = command.arg("import").arg(input.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a failed file fails the command: {stdout}"
    );
    assert!(
        stdout.contains(
            "stored 2 instances (2 new, 0 unchanged, 0 replaced; 1 with pixel data that cannot be decoded)"
        ),
        "{stdout}"
    );
    // Kept, marked and reported.
    assert!(
        stdout.contains("stored, pixel data not decodable:") && stdout.contains("broken-jpeg.dcm"),
        "{stdout}"
    );
    assert!(stdout.contains("skipped 2 files"), "{stdout}");
    assert!(stdout.contains("1 failed"), "{stdout}");
    assert!(
        stdout.contains("cut.dcm: the DICOM file is truncated or corrupt"),
        "{stdout}"
    );

    // The service over the same data directory serves what was imported.
    let dir = data.path().to_path_buf();
    let app = spawn_app_with(move |s| {
        s.storage.data_dir = dir;
        if let Some(url) = database {
            s.database.url = Some(url.into());
        }
    })
    .await;
    assert_eq!(app.qido("PatientID=1CT1").await.len(), 1);
    assert_eq!(app.search("ImagingStudy").await["total"], 2);
}
