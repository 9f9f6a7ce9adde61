//! DICOM ingest over STOW-RS, the ImagingStudy resources it keeps, and the QIDO-RS study search,
//! on real third-party DICOM files (pydicom's test corpus, fetched by scripts/fetch-test-data).

use serde_json::Value;

use crate::helpers::{TestApp, assert_outcome, pydicom_file, pydicom_path, spawn_app};

pub(crate) const BOUNDARY: &str = "DICOMwebBoundary7d1f";
const CANNOT_UNDERSTAND: u64 = 0xC000;
const DOES_NOT_MATCH_SOP_CLASS: u64 = 0xA900;
/// Warnings (PS3.4 Table B.2-1): stored, some data left out; stored, data elements coerced.
const ELEMENTS_DISCARDED: u64 = 0xB006;
const COERCION_OF_DATA_ELEMENTS: u64 = 0xB000;

/// A `multipart/related` body with one part per file.
pub(crate) fn multipart(parts: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(part);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub(crate) async fn stow(app: &TestApp, path: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(format!("{}/dicomweb{path}", app.address))
        .header(
            "content-type",
            format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}"),
        )
        .header("accept", "application/dicom+json")
        .body(body)
        .send()
        .await
        .unwrap()
}

pub(crate) fn sequence<'a>(body: &'a Value, tag: &str) -> Vec<&'a Value> {
    body[tag]["Value"]
        .as_array()
        .map(|items| items.iter().collect())
        .unwrap_or_default()
}

pub(crate) fn value<'a>(item: &'a Value, tag: &str) -> &'a Value {
    &item[tag]["Value"][0]
}

#[tokio::test]
async fn stored_instances_become_an_imaging_study_and_a_qido_match() {
    let (Some(ct), Some(mr)) = (pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm")) else {
        return;
    };
    let app = spawn_app().await;
    let response = stow(&app, "/studies", multipart(&[&ct, &mr])).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/dicom+json");
    let body: Value = response.json().await.unwrap();
    let referenced = sequence(&body, "00081199");
    assert_eq!(referenced.len(), 2, "{body}");
    assert!(body.get("00081198").is_none(), "{body}");
    assert_eq!(
        value(referenced[0], "00081150"),
        "1.2.840.10008.5.1.4.1.1.2"
    );

    // CT_small's study, as ImagingStudy and as a QIDO-RS match.
    let studies = app.qido("PatientID=1CT1").await;
    assert_eq!(studies.len(), 1, "{studies:?}");
    let study = &studies[0];
    let study_uid = value(study, "0020000D").as_str().unwrap().to_owned();
    assert_eq!(value(study, "00201208"), 1);
    assert_eq!(value(study, "00080061"), "CT");
    assert_eq!(
        value(study, "00100010")["Alphabetic"],
        "CompressedSamples^CT1"
    );

    let found = app
        .search(&format!(
            "ImagingStudy?identifier=urn:dicom:uid|urn:oid:{study_uid}"
        ))
        .await;
    assert_eq!(found["total"], 1, "{found}");
    let imaging = &found["entry"][0]["resource"];
    assert_eq!(imaging["status"], "available");
    assert_eq!(imaging["numberOfSeries"], 1);
    assert_eq!(imaging["numberOfInstances"], 1);
    assert_eq!(imaging["series"][0]["modality"]["code"], "CT");
    assert_eq!(
        imaging["series"][0]["instance"][0]["sopClass"]["code"],
        "urn:oid:1.2.840.10008.5.1.4.1.1.2"
    );

    // The subject is a Patient carrying the DICOM Patient ID, and the study is found by it.
    let subject = imaging["subject"]["reference"].as_str().unwrap();
    let patient: Value = app.get(subject).await.json().await.unwrap();
    assert_eq!(patient["identifier"][0]["value"], "1CT1");
    let by_patient = app.search(&format!("ImagingStudy?subject={subject}")).await;
    assert_eq!(by_patient["total"], 1);

    // The STOW-RS request is in the audit trail under the patients of both studies.
    let patient_id = subject.strip_prefix("Patient/").unwrap();
    let events = app.audit_events(&format!("patient={patient_id}")).await;
    let stow_record = events
        .iter()
        .find(|e| e["subtype"][0]["code"] == "stow-rs")
        .unwrap_or_else(|| panic!("{events:?}"));
    let patients = stow_record["entity"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["what"]["reference"].as_str())
        .filter(|r| r.starts_with("Patient/"))
        .count();
    assert_eq!(patients, 2, "{stow_record}");
}

#[tokio::test]
async fn sending_the_same_instance_again_changes_nothing() {
    let Some(ct) = pydicom_file("CT_small.dcm") else {
        return;
    };
    let app = spawn_app().await;
    for _ in 0..2 {
        let response = stow(&app, "/studies", multipart(&[&ct])).await;
        assert_eq!(response.status(), 200);
    }
    let studies = app.qido("PatientID=1CT1").await;
    assert_eq!(studies.len(), 1);
    assert_eq!(value(&studies[0], "00201208"), 1);
    let found = app.search("ImagingStudy").await;
    assert_eq!(found["total"], 1);
    let patients = app.search("Patient").await;
    assert_eq!(
        patients["total"], 1,
        "one Patient for the study, not one per send"
    );
}

#[tokio::test]
async fn bad_parts_fail_alone_and_good_ones_are_stored() {
    let Some(ct) = pydicom_file("CT_small.dcm") else {
        return;
    };
    let app = spawn_app().await;
    let truncated = &ct[..ct.len() / 2];
    // Cut just before the Pixel Data element (7FE0,0010): a readable image without pixels.
    let pixel_tag = ct
        .windows(4)
        .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00])
        .unwrap();
    let no_pixels = &ct[..pixel_tag];
    let response = stow(
        &app,
        "/studies",
        multipart(&[b"not dicom at all", truncated, b"", no_pixels, &ct]),
    )
    .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let failed = sequence(&body, "00081198");
    let reasons: Vec<u64> = failed
        .iter()
        .map(|f| value(f, "00081197").as_u64().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            CANNOT_UNDERSTAND,
            CANNOT_UNDERSTAND,
            CANNOT_UNDERSTAND,
            DOES_NOT_MATCH_SOP_CLASS
        ],
        "{body}"
    );
    // The image without pixels is named by its UIDs; bytes that are not DICOM cannot be.
    assert!(value(failed[3], "00081155").is_string());
    assert!(failed[0]["00081155"].get("Value").is_none());
    assert_eq!(sequence(&body, "00081199").len(), 1);
    assert_eq!(app.qido("PatientID=1CT1").await.len(), 1);
}

/// Instances read despite a fault real devices write are stored, and the answer says so:
/// 202 with a Warning Reason (0008,1196) on each such instance (PS3.18 Table 10.5.3-1).
#[tokio::test]
async fn instances_stored_despite_a_fault_are_answered_with_a_warning() {
    let (Some(ct), Some(mr)) = (pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm")) else {
        return;
    };
    let app = spawn_app().await;
    let mut padded = ct.clone();
    padded.extend_from_slice(&[0; 64]);
    let group_length = u32::from_le_bytes(mr[140..144].try_into().unwrap()) as usize;
    let bare = &mr[144 + group_length..];
    let response = stow(&app, "/studies", multipart(&[&padded, bare])).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("00081198").is_none(), "{body}");
    let warnings: Vec<u64> = sequence(&body, "00081199")
        .iter()
        .map(|item| value(item, "00081196").as_u64().unwrap())
        .collect();
    assert_eq!(
        warnings,
        [ELEMENTS_DISCARDED, COERCION_OF_DATA_ELEMENTS],
        "{body}"
    );
    assert_eq!(app.qido("PatientID=1CT1").await.len(), 1);
    // The same file without its fault: stored (again, unchanged) with no warning, 200.
    let response = stow(&app, "/studies", multipart(&[&ct])).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(
        sequence(&body, "00081199")[0].get("00081196").is_none(),
        "{body}"
    );
}

#[tokio::test]
async fn a_broken_body_keeps_the_instances_read_before_the_break() {
    let (Some(ct), Some(mr)) = (pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm")) else {
        return;
    };
    let app = spawn_app().await;
    // Framing broken before any part is complete: refused whole, nothing stored.
    let wrong_boundary = multipart(&[&ct]).replace_boundary();
    assert_outcome(stow(&app, "/studies", wrong_boundary).await, 400).await;
    let mut cut_in_first = multipart(&[&ct]);
    cut_in_first.truncate(ct.len() / 2);
    assert_outcome(stow(&app, "/studies", cut_in_first).await, 400).await;
    assert!(app.qido("").await.is_empty());

    // The close delimiter is gone: the first instance was complete and is stored; the answer
    // says so, and that the rest could not be read.
    let mut body = multipart(&[&ct, &mr]);
    body.truncate(body.len() - 40);
    let response = stow(&app, "/studies", body).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(sequence(&body, "00081199").len(), 1, "{body}");
    let failed = sequence(&body, "00081198");
    assert_eq!(failed.len(), 1, "{body}");
    assert_eq!(value(failed[0], "00081197"), CANNOT_UNDERSTAND);
    assert!(failed[0]["00081155"].get("Value").is_none(), "{body}");
    assert_eq!(app.qido("PatientID=1CT1").await.len(), 1);
    assert!(app.qido("PatientID=4MR1").await.is_empty());
}

/// An instance is stored as soon as its part has arrived, before the rest of the body: the
/// service holds one instance at a time, not the whole request.
#[tokio::test]
async fn each_instance_is_stored_as_its_part_arrives() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (Some(ct), Some(mr)) = (pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm")) else {
        return;
    };
    let app = spawn_app().await;
    let body = multipart(&[&ct, &mr]);
    // The first part and the boundary line and headers of the second.
    let second = format!("--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n");
    let split = body
        .windows(second.len())
        .rposition(|w| w == second.as_bytes())
        .unwrap()
        + second.len();
    let port = app
        .address
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /dicomweb/studies HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}\r\n\
         Accept: application/dicom+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = |bytes: &[u8]| {
        let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
        out
    };
    stream.write_all(&chunk(&body[..split])).await.unwrap();
    stream.flush().await.unwrap();

    // The request is still open, and CT_small is already stored.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.qido("PatientID=1CT1").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first instance was not stored while the body was still arriving"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(app.qido("PatientID=4MR1").await.is_empty());

    stream.write_all(&chunk(&body[split..])).await.unwrap();
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let json = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let body: Value = serde_json::from_str(json).unwrap();
    assert_eq!(sequence(&body, "00081199").len(), 2, "{body}");
    assert_eq!(app.qido("PatientID=4MR1").await.len(), 1);
}

trait ReplaceBoundary {
    fn replace_boundary(self) -> Vec<u8>;
}

impl ReplaceBoundary for Vec<u8> {
    fn replace_boundary(self) -> Vec<u8> {
        let text = BOUNDARY.as_bytes();
        let mut out = self;
        let mut i = 0;
        while let Some(p) = out[i..].windows(text.len()).position(|w| w == text) {
            out[i + p] = b'X';
            i += p + text.len();
        }
        out
    }
}

#[tokio::test]
async fn a_study_url_refuses_instances_of_other_studies() {
    let Some(ct) = pydicom_file("CT_small.dcm") else {
        return;
    };
    let app = spawn_app().await;
    let response = stow(&app, "/studies/1.2.3.4", multipart(&[&ct])).await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    let failed = sequence(&body, "00081198");
    assert_eq!(value(failed[0], "00081197"), DOES_NOT_MATCH_SOP_CLASS);
    assert_outcome(
        stow(&app, "/studies/not-a-uid", multipart(&[&ct])).await,
        400,
    )
    .await;
}

#[tokio::test]
async fn stow_refuses_other_media_types_and_oversized_bodies() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/dicomweb/studies", app.address))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_outcome(response, 415).await;

    let response = app
        .client
        .post(format!("{}/dicomweb/studies", app.address))
        .header(
            "content-type",
            format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}"),
        )
        .header("content-length", "99999999999")
        .body("x")
        .send()
        .await;
    // The server answers 413 before reading the body; the client may see the connection close.
    if let Ok(response) = response {
        assert_outcome(response, 413).await;
    }
}

#[tokio::test]
async fn every_transfer_syntax_family_of_the_corpus_is_accepted() {
    let names = [
        "MR_small.dcm",
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "JPEG-lossy.dcm",
        "image_dfl.dcm",
    ];
    let files: Vec<Vec<u8>> = names.iter().filter_map(|n| pydicom_file(n)).collect();
    if files.len() != names.len() {
        return;
    }
    let app = spawn_app().await;
    let parts: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
    let response = stow(&app, "/studies", multipart(&parts)).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(sequence(&body, "00081199").len(), names.len());
}

/// A file written with ACR-NEMA's `YYYY.MM.DD` dates (pydicom's ExplVR_BigEnd.dcm: 1997.04.24)
/// is answered in QIDO-RS with DICOM's DA form, as DICOM JSON requires.
#[tokio::test]
async fn qido_answers_legacy_dates_in_da_form() {
    let Some(file) = pydicom_file("ExplVR_BigEnd.dcm") else {
        return;
    };
    let app = spawn_app().await;
    let response = stow(&app, "/studies", multipart(&[&file])).await;
    assert_eq!(response.status(), 200);
    let studies = app.qido("").await;
    assert_eq!(studies.len(), 1, "{studies:?}");
    let date = &studies[0]["00080020"];
    assert_eq!(date["vr"], "DA");
    assert_eq!(date["Value"][0], "19970424", "{date}");
}

/// The README's STOW-RS recipe: `scripts/stow-rs` builds the multipart body with bash and posts
/// it with curl.
#[tokio::test]
async fn the_stow_script_sends_files_in_one_request() {
    let (Some(ct), Some(mr)) = (pydicom_path("CT_small.dcm"), pydicom_path("MR_small.dcm")) else {
        return;
    };
    let app = spawn_app().await;
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/stow-rs");
    let url = format!("{}/dicomweb/studies", app.address);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(script)
            .args(["--url", &url])
            .arg(ct)
            .arg(mr)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(sequence(&answer, "00081199").len(), 2, "{answer}");
    assert_eq!(app.qido("").await.len(), 2);
}
