//! No PHI in logs: a patient's made-up name, birth date and medical record number go through
//! every door (FHIR create, search, update and invalid bodies; HL7 v2 over HTTP, good and bad,
//! and over MLLP; DICOM studies by STOW-RS and by C-STORE; an assessment) and none of them
//! appears in any log line, debug level included.

use serde_json::{Value, json};

use crate::helpers::pydicom_file;
use crate::request_log::Service;

const FAMILY: &str = "Zzcanaryfamily";
const GIVEN: &str = "Zzcanarygiven";
const MRN: &str = "MRNCANARY7731";
const BIRTH: &str = "1911-11-11";
const BIRTH_V2: &str = "19111111";

#[tokio::test]
async fn canary_values_sent_through_every_door_never_reach_the_log() {
    let service = Service::start_with(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        &[("PROGNOSTICS_INFERENCE__ENABLED", "false")],
        true,
    )
    .await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}/{path}", service.address);
    let fhir = |body: Value| {
        client
            .post(url("fhir/Patient"))
            .header("Content-Type", "application/fhir+json")
            .body(body.to_string())
            .send()
    };

    let patient: Value = fhir(json!({"resourceType": "Patient", "gender": "female",
        "name": [{"family": FAMILY, "given": [GIVEN]}], "birthDate": BIRTH,
        "identifier": [{"system": "urn:test:mrn", "value": MRN}]}))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = patient["id"].as_str().unwrap().to_owned();
    // Invalid bodies that carry the values: their errors must not echo them.
    for bad in [
        json!({"resourceType": "Patient", "birthDate": format!("{GIVEN}-{BIRTH}")}),
        json!({"resourceType": "Patient", "name": [{"family": FAMILY, "colour": MRN}]}),
        json!({"resourceType": "Patient", "gender": FAMILY}),
    ] {
        assert_eq!(fhir(bad).await.unwrap().status(), 400);
    }
    let malformed = client
        .post(url("fhir/Patient"))
        .header("Content-Type", "application/fhir+json")
        .body(format!(
            "{{\"resourceType\": \"Patient\", \"name\": {FAMILY}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    for search in [
        format!("fhir/Patient?identifier=urn:test:mrn|{MRN}"),
        format!("fhir/Patient?identifier={MRN}&_count=oops"),
    ] {
        client.get(url(&search)).send().await.unwrap();
    }
    let mut updated = patient.clone();
    updated["name"][0]["given"] = json!([GIVEN, "Second"]);
    client
        .put(url(&format!("fhir/Patient/{id}")))
        .header("Content-Type", "application/fhir+json")
        .body(updated.to_string())
        .send()
        .await
        .unwrap();

    // HL7 v2: an ADT that files the values, and one whose birth date is not a date.
    let adt = |control: &str, birth: &str| {
        format!(
            "MSH|^~\\&|ADT|HOSP|PROGNOSTICS|ONC|20240105083000||ADT^A08|{control}|P|2.5.1\r\
             PID|1||{MRN}^^^HOSP^MR||{FAMILY}^{GIVEN}||{birth}|F\r"
        )
    };
    for message in [
        adt("C1", BIRTH_V2),
        adt("C2", &format!("{GIVEN}{BIRTH_V2}")),
    ] {
        client
            .post(url("hl7/v2"))
            .header("Content-Type", "x-application/hl7-v2+er7")
            .body(message)
            .send()
            .await
            .unwrap();
    }

    // DICOM by STOW-RS: pydicom's CT_small with the canary as its patient's name.
    if let Some(mut ct) = pydicom_file("CT_small.dcm") {
        let from = b"CompressedSamples^CT1";
        let at = ct.windows(from.len()).position(|w| w == from).unwrap();
        let canary = format!("{FAMILY}^{GIVEN}");
        ct[at..at + from.len()].copy_from_slice(&canary.as_bytes()[..from.len()]);
        let body = crate::dicomweb::multipart(&[&ct]);
        client
            .post(url("dicomweb/studies"))
            .header(
                "Content-Type",
                "multipart/related; type=\"application/dicom\"; boundary=B",
            )
            .body(body)
            .send()
            .await
            .unwrap();
    }

    // The same over MLLP, and the study over DIMSE with dcmtk's storescu.
    let mllp = service.port_of("HL7 v2 MLLP listener listening");
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", mllp))
        .await
        .unwrap();
    let ack = crate::hl7::exchange(&mut stream, adt("C3", BIRTH_V2).as_bytes()).await;
    assert!(ack.contains("MSA|AA"), "{ack}");
    if let Some(file) = crate::helpers::pydicom_path("MR_small.dcm")
        && crate::dimse::dcmtk_available()
    {
        let mut mr = std::fs::read(file).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let canary_file = dir.path().join("canary.dcm");
        // MR_small's PatientName is `CompressedSamples^MR1`: the canary takes its place.
        let from = b"CompressedSamples^MR1";
        let at = mr.windows(from.len()).position(|w| w == from).unwrap();
        let canary = format!("{FAMILY}^{GIVEN}");
        mr[at..at + from.len()].copy_from_slice(&canary.as_bytes()[..from.len()]);
        std::fs::write(&canary_file, &mr).unwrap();
        let dicom = service.port_of("DICOM storage SCP listening").to_string();
        let output = tokio::task::spawn_blocking(move || {
            crate::dimse::run(
                "storescu",
                &[
                    "-aec".into(),
                    "PROGNOSTICS".into(),
                    "127.0.0.1".into(),
                    dicom,
                    canary_file.display().to_string(),
                ],
            )
        })
        .await
        .unwrap();
        assert!(output.status.success());
    }

    // An assessment of the patient (refused: no diagnosis on record; the refusal is logged).
    client
        .post(url(&format!("fhir/Patient/{id}/$risk-assessment")))
        .header("Content-Type", "application/fhir+json")
        .body(r#"{"resourceType": "Parameters"}"#)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let lines = service.since(0);
    assert!(
        lines.len() > 20,
        "the doors were used: {} lines",
        lines.len()
    );
    // Identifiers are logged (that is how a line is traced), and the search finds them.
    assert!(
        lines.iter().any(|l| l.to_string().contains(&id)),
        "the patient's id appears in the log"
    );
    let canaries = [
        FAMILY,
        GIVEN,
        MRN,
        BIRTH,
        BIRTH_V2,
        &FAMILY.to_ascii_uppercase(),
    ];
    let leaks: Vec<String> = lines
        .iter()
        .map(Value::to_string)
        .filter(|line| {
            let lower = line.to_ascii_lowercase();
            canaries
                .iter()
                .any(|c| lower.contains(&c.to_ascii_lowercase()))
        })
        .collect();
    assert!(leaks.is_empty(), "PHI in the log:\n{}", leaks.join("\n"));
}
