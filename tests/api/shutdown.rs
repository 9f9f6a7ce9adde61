//! Stopping as an orchestrator does (SIGTERM): requests in flight are answered, open MLLP and
//! DICOM connections are closed between messages, and the process exits by itself, with
//! everything it acknowledged stored.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::request_log::Service;

#[tokio::test]
async fn sigterm_answers_requests_in_flight_closes_connections_and_exits() {
    let Some(ct) = crate::helpers::pydicom_file("CT_small.dcm") else {
        return;
    };
    let mut service = Service::start_with(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        &[("PROGNOSTICS_INFERENCE__ENABLED", "false")],
        true,
    )
    .await;
    let mllp_port = service.port_of("HL7 v2 MLLP listener listening");
    let dicom_port = service.port_of("DICOM storage SCP listening");

    // An interface engine's connection, left open after one message.
    let mut engine = tokio::net::TcpStream::connect(("127.0.0.1", mllp_port))
        .await
        .unwrap();
    let ack = crate::hl7::exchange(&mut engine, crate::hl7::ORU.as_bytes()).await;
    assert!(ack.contains("MSA|AA"), "{ack}");
    // A modality's association, open and idle.
    let mut modality = tokio::net::TcpStream::connect(("127.0.0.1", dicom_port))
        .await
        .unwrap();

    // A STOW-RS request whose body is half sent when the stop comes.
    let body = crate::dicomweb::multipart(&[&ct]);
    let address = service.address.trim_start_matches("http://").to_owned();
    let mut upload = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /dicomweb/studies HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: multipart/related; type=\"application/dicom\"; boundary={}\r\n\
         Content-Length: {}\r\n\r\n",
        crate::dicomweb::BOUNDARY,
        body.len()
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    let half = body.len() / 2;
    upload.write_all(&body[..half]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    service.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    upload.write_all(&body[half..]).await.unwrap();
    let mut answer = Vec::new();
    upload.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "answered in full: {answer}"
    );

    // The idle connections are closed by the service, not left to their idle timeout.
    let mut byte = [0u8; 1];
    for stream in [&mut engine, &mut modality] {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "closed: {read:?}");
    }
    let status = service
        .exited_within(Duration::from_secs(20))
        .await
        .expect("the process exits by itself");
    assert!(status.success(), "{status:?}");
    let said = service.since(0);
    for protocol in ["DICOM", "MLLP"] {
        assert!(
            said.iter()
                .any(|l| l["message"] == "stopped: every connection finished"
                    && l["protocol"] == protocol),
            "{protocol} drained"
        );
    }

    // What was acknowledged is there after a restart.
    service.restart().await;
    for table in ["hl7_messages", "dicom_instances"] {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        assert_eq!(crate::crash::count(&service, &sql).await, 1, "{table}");
    }
}
