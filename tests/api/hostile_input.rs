//! Input built to exhaust the machine: declared lengths larger than what was sent, command sets
//! that never end, images that would decode to gigabytes. Each is refused in its protocol's own
//! form before memory is taken, and the service goes on serving.

use dicom_ul::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};

use crate::dicomweb::{multipart, stow};
use crate::helpers::{TestApp, spawn_app};

const VERIFICATION: &str = "1.2.840.10008.1.1";

/// An association for C-ECHO, made with dicom-ul's client.
fn associate(port: u16) -> dicom_ul::association::ClientAssociation<std::net::TcpStream> {
    ClientAssociationOptions::new()
        .with_abstract_syntax(VERIFICATION)
        .calling_ae_title("HOSTILE")
        .called_ae_title("PROGNOSTICS")
        .read_timeout(std::time::Duration::from_secs(10))
        .establish(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .expect("association")
}

fn command_fragment(context: u8, data: Vec<u8>, is_last: bool) -> Pdu {
    Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: context,
            value_type: PDataValueType::Command,
            is_last,
            data,
        }],
    }
}

/// The test process's peak resident memory (the service runs in it), in bytes.
pub(crate) fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Fails when the peak grew by more than `limit` bytes since `before` (other tests running
/// beside this one take far less).
pub(crate) fn assert_peak_grew_less_than(before: u64, limit: u64, what: &str) {
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < limit, "{what} took {} MiB", grown >> 20);
}

/// Sends command fragments of (bytes, is last) on a new association and returns the PDU the
/// service answers with.
async fn send_commands(app: &TestApp, fragments: Vec<(Vec<u8>, bool)>) -> Option<Pdu> {
    let port = app.dicom_port.unwrap();
    tokio::task::spawn_blocking(move || {
        let mut association = associate(port);
        let context = association.presentation_contexts()[0].id;
        for (data, is_last) in fragments {
            association
                .send(&command_fragment(context, data, is_last))
                .unwrap();
        }
        association.receive().ok()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_dimse_command_declaring_more_than_it_sends_is_aborted_before_memory_is_taken() {
    if !crate::dimse::dcmtk_available() {
        return;
    }
    let app = spawn_app().await;
    let before = peak_rss();
    // 22 bytes: (0000,0002) declaring 0xF0000000 bytes, then 14 of them.
    let mut command = vec![0x00, 0x00, 0x02, 0x00];
    command.extend_from_slice(&0xF000_0000u32.to_le_bytes());
    command.extend_from_slice(b"1.2.840.10008\0");
    let answer = send_commands(&app, vec![(command, true)]).await;
    assert!(matches!(answer, Some(Pdu::AbortRQ { .. })), "{answer:?}");
    assert_peak_grew_less_than(before, 1 << 30, "a 22-byte command");
    assert!(crate::dimse::echoes(&app).await, "still answers");
}

#[tokio::test]
async fn a_command_set_that_never_ends_is_aborted_at_its_limit() {
    if !crate::dimse::dcmtk_available() {
        return;
    }
    let app = spawn_app().await;
    // Fragments never marked last, 20 KB in all: the service keeps 16 KiB at most.
    let fragments = (0..5).map(|_| (vec![0; 4_000], false)).collect();
    let answer = send_commands(&app, fragments).await;
    assert!(matches!(answer, Some(Pdu::AbortRQ { .. })), "{answer:?}");
    assert!(crate::dimse::echoes(&app).await, "still answers");
}

/// Replaces the 4-byte length after the last `header` in `bytes` with `length`.
fn patch_length_after(bytes: &mut [u8], header: &[u8], length: u32) {
    let at = bytes
        .windows(header.len())
        .rposition(|w| w == header)
        .expect("the header is there")
        + header.len();
    bytes[at..at + 4].copy_from_slice(&length.to_le_bytes());
}

#[tokio::test]
async fn a_stow_part_whose_pixel_data_declares_gigabytes_is_refused_before_memory_is_taken() {
    let Some(mut ct) = crate::helpers::pydicom_file("CT_small.dcm") else {
        return;
    };
    // (7FE0,0010) OW, reserved, then the length: patched to 0xF0000000 in a 39 KB file.
    patch_length_after(
        &mut ct,
        &[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0],
        0xF000_0000,
    );
    let app = spawn_app().await;
    let before = peak_rss();
    let response = stow(&app, "/studies", multipart(&[&ct])).await;
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.unwrap();
    let failed = crate::dicomweb::sequence(&body, "00081198");
    assert_eq!(
        crate::dicomweb::value(failed[0], "00081197").as_u64(),
        Some(0xC000)
    );
    assert_peak_grew_less_than(before, 1 << 30, "a patched Pixel Data length");
    assert_eq!(app.qido("").await.len(), 0, "nothing stored");
}

#[tokio::test]
async fn a_jpeg_declaring_more_pixels_than_its_header_is_kept_but_never_decoded() {
    let Some(mut jpeg) = crate::helpers::pydicom_file("SC_jpeg_no_color_transform.dcm") else {
        return;
    };
    // The baseline frame header (SOF0) after SOI: 30000 × 30000 pixels in a 4 KB file.
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline frame header");
    jpeg[sof + 5..sof + 7].copy_from_slice(&30000u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&30000u16.to_be_bytes());
    let app = spawn_app().await;
    let before = peak_rss();
    let response = stow(&app, "/studies", multipart(&[&jpeg])).await;
    assert_eq!(
        response.status(),
        200,
        "kept, as any instance a codec refuses"
    );
    assert_peak_grew_less_than(before, 1 << 30, "a JPEG declaring 30000² pixels");
    let undecodable = app
        .query_count("SELECT COUNT(*) FROM dicom_instances WHERE pixel_status = 'undecodable'")
        .await;
    assert_eq!(undecodable, 1, "marked as not decodable");
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_is_answered_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_app_with(|s| s.server.body_timeout_secs = 1).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    // Headers promising 1,000 bytes, then 10 of them, then nothing.
    let request = format!(
        "POST /fhir/Patient HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/fhir+json\r\nContent-Length: 1000\r\n\r\n{{\"resourceT"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "answered in time, not held open");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("OperationOutcome"), "{answer}");
}

#[tokio::test]
async fn silent_dicom_connections_past_the_cap_are_closed_and_the_rest_time_out() {
    use tokio::io::AsyncReadExt;
    if !crate::dimse::dcmtk_available() {
        return;
    }
    let app = crate::helpers::spawn_app_with(|s| {
        s.dicom.max_connections = 4;
        s.dicom.handshake_timeout_secs = 2;
    })
    .await;
    let address = format!("127.0.0.1:{}", app.dicom_port.unwrap());
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // The fifth is closed at once: a read sees the end, not a wait.
    let mut fifth = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(std::time::Duration::from_secs(1), fifth.read(&mut byte))
        .await
        .expect("closed at once");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The silent ones are closed once the handshake time is up; then a modality gets in.
    for mut stream in silent {
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("closed after the handshake timeout");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    assert!(crate::dimse::echoes(&app).await);
}

/// The scenario of a port flooded with silent connections in a process with few file
/// descriptors: the other doors keep answering and the log stays short.
#[tokio::test]
async fn a_flood_of_silent_connections_leaves_http_answering_and_the_log_short() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let service = crate::request_log::Service::start_limited(
        dir,
        &[("PROGNOSTICS_INFERENCE__ENABLED", "false")],
        true,
        Some(r#"ulimit -n 256 && exec "$0" "$@""#),
    )
    .await;
    let dicom = service.port_of("DICOM storage SCP listening");
    let logged_before = service.logged();
    let mut flood = Vec::new();
    for _ in 0..300 {
        match tokio::net::TcpStream::connect(("127.0.0.1", dicom)).await {
            Ok(stream) => flood.push(stream),
            Err(e) => panic!("connect: {e}"),
        }
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let health = reqwest::Client::new()
        .get(format!("{}/healthz", service.address))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .expect("HTTP answers beside the flood");
    assert_eq!(health.status(), 200);
    let lines = service.since(logged_before);
    assert!(
        lines.len() < 50,
        "{} lines logged: {:?}",
        lines.len(),
        &lines[..5.min(lines.len())]
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "connection limit reached: new connections are closed"),
        "{lines:?}"
    );
    drop(flood);
}
