//! `prognostics backup` while the service runs, and a restore from it: what the service held
//! at the backup (resources, DICOM files, HL7 messages) is served from the backup folder.

use serde_json::{Value, json};

use crate::request_log::Service;

#[tokio::test]
async fn a_backup_taken_while_serving_restores_what_was_stored() {
    let Some(ct) = crate::helpers::pydicom_file("CT_small.dcm") else {
        return;
    };
    let service = Service::start_with(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        &[("PROGNOSTICS_INFERENCE__ENABLED", "false")],
        true,
    )
    .await;
    let client = reqwest::Client::new();
    for n in 0..5 {
        let created = client
            .post(format!("{}/fhir/Patient", service.address))
            .header("content-type", "application/fhir+json")
            .body(
                json!({"resourceType": "Patient", "gender": "female",
                "identifier": [{"system": "urn:backup", "value": format!("P{n}")}]})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    let stored = client
        .post(format!("{}/dicomweb/studies", service.address))
        .header(
            "content-type",
            format!(
                "multipart/related; type=\"application/dicom\"; boundary={}",
                crate::dicomweb::BOUNDARY
            ),
        )
        .body(crate::dicomweb::multipart(&[&ct]))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200);
    let mut engine = tokio::net::TcpStream::connect((
        "127.0.0.1",
        service.port_of("HL7 v2 MLLP listener listening"),
    ))
    .await
    .unwrap();
    let ack = crate::hl7::exchange(&mut engine, crate::hl7::ORU.as_bytes()).await;
    assert!(ack.contains("MSA|AA"), "{ack}");

    // Taken while the service runs.
    let folder = tempfile::tempdir().unwrap();
    let to = folder.path().join("backup");
    let backup = service.command(&["backup", "--to", to.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&backup.stdout);
    assert!(
        backup.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(said.contains("and 1 DICOM files"), "{said}");
    // Not over an earlier backup.
    let again = service.command(&["backup", "--to", to.to_str().unwrap()]);
    assert!(!again.status.success());

    // Restored: served from the backup folder (PostgreSQL: its dump restored first).
    let restored_database = match &service.database {
        None => None,
        Some(_) => {
            let url = crate::helpers::fresh_postgres_database().await.unwrap();
            let restored = std::process::Command::new("pg_restore")
                .args(["--no-owner", "--dbname", &url])
                .arg(to.join("prognostics.pgdump"))
                .status()
                .unwrap();
            assert!(restored.success());
            Some(url)
        }
    };
    drop(service);
    let data = to.clone();
    let app = crate::helpers::spawn_app_with(move |s| {
        s.storage.data_dir = data;
        if let Some(url) = restored_database {
            s.database.url = Some(url.into());
        }
    })
    .await;
    let patients: Value = app
        .search("Patient?identifier=urn:backup|&_summary=count")
        .await;
    assert_eq!(patients["total"], 5, "{patients}");
    assert_eq!(app.qido("").await.len(), 1);
    // The HL7 result, as the Observation it was filed as.
    let results: Value = app.search("Observation?code=http://loinc.org|2093-3").await;
    assert_eq!(results["total"], 1, "{results}");
    // The file itself came along, byte for byte.
    let files = files_under(&to.join("dicom"));
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), ct);
}

/// The files under `dir`.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                folders.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files
}
