//! HL7 v2 over MLLP: messages stored before their ACK, ACKs that name what is wrong, several
//! messages per connection, re-sends stored once.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, spawn_app};

pub(crate) const ORU: &str = "MSH|^~\\&|LAB|HOSP|PROGNOSTICS|ONC|20240105083000||ORU^R01^ORU_R01|MSG0001|P|2.5.1\r\
PID|1||MRN123^^^HOSP^MR||DOE^JANE||19650412|F\r\
OBR|1||LAB555|24331-1^Lipid panel^LN|||20240105070000\r\
OBX|1|NM|2093-3^Cholesterol^LN||196|mg/dL|<200|N|||F\r";

pub(crate) async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(("127.0.0.1", app.mllp_port.expect("the MLLP listener runs")))
        .await
        .unwrap()
}

pub(crate) async fn exchange<S>(stream: &mut S, message: &[u8]) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut framed = vec![0x0b];
    framed.extend_from_slice(message);
    framed.extend_from_slice(&[0x1c, 0x0d]);
    stream.write_all(&framed).await.unwrap();
    read_ack(stream).await
}

async fn read_ack<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut ack = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("an ACK within 10 s")
            .unwrap();
        assert_eq!(read, 1, "the connection stays open for the ACK");
        ack.push(byte[0]);
        if ack.ends_with(&[0x1c, 0x0d]) {
            break;
        }
    }
    assert_eq!(ack[0], 0x0b, "the ACK is an MLLP frame");
    String::from_utf8(ack[1..ack.len() - 2].to_vec()).unwrap()
}

pub(crate) fn segment<'a>(ack: &'a str, id: &str) -> Vec<&'a str> {
    ack.split('\r')
        .find(|s| s.starts_with(id))
        .unwrap_or_else(|| panic!("{id} in {ack:?}"))
        .split('|')
        .collect()
}

#[tokio::test]
async fn messages_are_stored_once_and_acknowledged_on_one_connection() {
    let app = spawn_app().await;
    let mut stream = connect(&app).await;
    let ack = exchange(&mut stream, ORU.as_bytes()).await;
    let msa = segment(&ack, "MSA");
    assert_eq!(&msa[1..3], ["AA", "MSG0001"]);
    let msh = segment(&ack, "MSH");
    assert_eq!(&msh[2..6], ["PROGNOSTICS", "ONC", "LAB", "HOSP"]);
    assert_eq!(msh[8], "ACK^R01^ACK");
    assert_eq!(
        app.query_count("SELECT COUNT(*) FROM hl7_messages").await,
        1
    );

    // The same message again (a lost ACK): answered again, stored once.
    let ack = exchange(&mut stream, ORU.replace('\r', "\n").as_bytes()).await;
    assert_eq!(&segment(&ack, "MSA")[1..3], ["AA", "MSG0001"]);
    assert_eq!(
        app.query_count("SELECT COUNT(*) FROM hl7_messages").await,
        1
    );

    // Another message on the same connection.
    let second = ORU.replace("MSG0001", "MSG0002").replace("|196|", "|201|");
    let ack = exchange(&mut stream, second.as_bytes()).await;
    assert_eq!(&segment(&ack, "MSA")[1..3], ["AA", "MSG0002"]);
    assert_eq!(
        app.query_count("SELECT COUNT(*) FROM hl7_messages").await,
        2
    );
}

#[tokio::test]
async fn bad_messages_get_ae_or_ar_with_err_and_are_not_stored() {
    let app = spawn_app().await;
    let mut stream = connect(&app).await;
    // No control id: AE, ERR naming MSH-10.
    let ack = exchange(
        &mut stream,
        b"MSH|^~\\&|LAB|HOSP|||20240105||ORU^R01|||2.5\rPID|1",
    )
    .await;
    assert_eq!(segment(&ack, "MSA")[1], "AE");
    let err = segment(&ack, "ERR");
    assert_eq!(err[2], "MSH^1^10");
    assert!(err[3].starts_with("101^"), "{err:?}");

    // An unsupported message type: AR, ERR 200 on MSH-9.
    let ack = exchange(
        &mut stream,
        b"MSH|^~\\&|LAB|HOSP|||20240105||QRY^A19|Q1|P|2.5\r",
    )
    .await;
    assert_eq!(&segment(&ack, "MSA")[1..3], ["AR", "Q1"]);
    assert!(segment(&ack, "ERR")[3].starts_with("200^"));

    // No MSH at all: AR, ERR 100.
    let ack = exchange(&mut stream, b"PID|1||123\r").await;
    assert_eq!(segment(&ack, "MSA")[1], "AR");
    assert!(segment(&ack, "ERR")[3].starts_with("100^"));

    // Over the size limit (1 MiB by default): AR, and the connection still serves.
    let mut huge = ORU.replace("MSG0001", "BIG1").into_bytes();
    huge.extend(std::iter::repeat_n(b'x', 1024 * 1024 + 10));
    let ack = exchange(&mut stream, &huge).await;
    assert_eq!(&segment(&ack, "MSA")[1..3], ["AR", "BIG1"]);
    let ack = exchange(&mut stream, ORU.as_bytes()).await;
    assert_eq!(segment(&ack, "MSA")[1], "AA");

    assert_eq!(
        app.query_count("SELECT COUNT(*) FROM hl7_messages").await,
        1
    );
}

#[tokio::test]
async fn enhanced_mode_never_acknowledges_when_asked_not_to() {
    let app = spawn_app().await;
    let mut stream = connect(&app).await;
    // MSH-15 AL, MSH-16 NE: no application ACK. The next message (original mode) is answered,
    // and its ACK is the next frame: nothing was sent for the first.
    let silent = ORU
        .replace("|P|2.5.1\r", "|P|2.5.1|||NE|NE\r")
        .replace("MSG0001", "QUIET");
    let mut framed = vec![0x0b];
    framed.extend_from_slice(silent.as_bytes());
    framed.extend_from_slice(&[0x1c, 0x0d]);
    stream.write_all(&framed).await.unwrap();
    let ack = exchange(&mut stream, ORU.as_bytes()).await;
    assert_eq!(&segment(&ack, "MSA")[1..3], ["AA", "MSG0001"]);
    assert_eq!(
        app.query_count("SELECT COUNT(*) FROM hl7_messages").await,
        2
    );
}

#[tokio::test]
async fn an_acknowledgement_is_never_acknowledged() {
    let app = spawn_app().await;
    let mut stream = connect(&app).await;
    // An ACK (a sender confused about who answers whom) and a malformed one: neither gets an
    // answer, nor is stored; the next message's ACK is the next frame.
    for unanswered in [
        "MSH|^~\\&|LAB|HOSP|PROGNOSTICS|ONC|20240105083000||ACK^R01^ACK|A1|P|2.5.1\rMSA|AA|MSG9\r",
        "MSH|^~\\&|LAB|HOSP|PROGNOSTICS|ONC|20240105083000||ACK|A2|P|2.5.1\rMSA\r",
    ] {
        let mut framed = vec![0x0b];
        framed.extend_from_slice(unanswered.as_bytes());
        framed.extend_from_slice(&[0x1c, 0x0d]);
        stream.write_all(&framed).await.unwrap();
    }
    let ack = exchange(&mut stream, ORU.as_bytes()).await;
    assert_eq!(&segment(&ack, "MSA")[1..3], ["AA", "MSG0001"]);
    assert_eq!(
        app.query_count("SELECT COUNT(*) FROM hl7_messages").await,
        1
    );
}

#[tokio::test]
async fn messages_posted_over_http_are_answered_with_their_ack() {
    let app = spawn_app().await;
    let url = format!("{}/hl7/v2", app.address);
    let response = app
        .client
        .post(&url)
        .header("Content-Type", "x-application/hl7-v2+er7")
        .body(ORU.replace('\r', "\r\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "x-application/hl7-v2+er7"
    );
    let ack = response.text().await.unwrap();
    assert_eq!(&segment(&ack, "MSA")[1..3], ["AA", "MSG0001"]);
    assert_eq!(
        app.query_count("SELECT COUNT(*) FROM hl7_messages").await,
        1
    );

    let response = app
        .client
        .post(&url)
        .header("Content-Type", "application/hl7-v2")
        .body("MSH|^~\\&|LAB|HOSP|||20240105||ORU^R01||P|2.5\r")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-hl7-acknowledgment-code"], "AE");
    assert_eq!(
        segment(&response.text().await.unwrap(), "ERR")[2],
        "MSH^1^10"
    );

    let response = app
        .client
        .post(&url)
        .header("Content-Type", HL7)
        .body(vec![b'x'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    // A web page can post text/plain from any browser without a CORS preflight: refused, so
    // that no page can file an ADT through a clinician's browser.
    for media_type in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let mut request = app.client.post(&url).body(ADT_RENAME);
        if !media_type.is_empty() {
            request = request.header("Content-Type", media_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{media_type}");
    }
    assert_eq!(
        app.query_count("SELECT COUNT(*) FROM hl7_messages").await,
        1
    );
}

const HL7: &str = "x-application/hl7-v2+er7";
const ADT_RENAME: &str = "MSH|^~\\&|X|Y|PROGNOSTICS|ONC|20240105083000||ADT^A08|A9|P|2.5.1\r\
PID|1||MRN123^^^HOSP^MR||EVIL^NAME||19650412|F\r";

/// `mllp_send` from the PyPI package hl7 0.4.5 (`scripts/install-test-deps` puts it in
/// `.cache/peers-venv`); missing, the test skips unless `TEST_REQUIRE_PEERS` is set.
pub(crate) fn mllp_send() -> Option<std::path::PathBuf> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/peers-venv/bin/mllp_send");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("TEST_REQUIRE_PEERS").is_none(),
        "mllp_send is missing: run scripts/install-test-deps"
    );
    eprintln!("skipping: mllp_send is not installed");
    None
}

/// Sends a file of messages (LF-separated; `--loose` splits them at MSH) to `port` with
/// `mllp_send`, and returns its output (the ACKs on stdout).
pub(crate) async fn send_file(
    mllp_send: &std::path::Path,
    port: u16,
    file: std::path::PathBuf,
) -> std::process::Output {
    let mllp_send = mllp_send.to_owned();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(mllp_send)
            .args(["--loose", "--port", &port.to_string(), "--file"])
            .arg(&file)
            .arg("127.0.0.1")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn mllp_send_delivers_a_file_of_messages_each_acknowledged() {
    let Some(mllp_send) = mllp_send() else {
        return;
    };
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    // Three messages in one file, LF-separated as text files are; --loose splits them at MSH.
    let adt = "MSH|^~\\&|EPIC|EPICADT|SMS|SMSADT|199912271408|CHARRIS|ADT^A04|1817457|D|2.5|\n\
               PID||0493575^^^2^ID 1|454721||DOE^JOHN^^^^|DOE^JOHN^^^^|19480203|M\n";
    let orm = "MSH|^~\\&|RIS|HOSP|PROGNOSTICS|ONC|20240105||ORM^O01|ORD1|P|2.3\n\
               PID|1||MRN9||ROE^ANN\nORC|NW|ORD1\nOBR|1|ORD1||71020^CHEST XRAY^CPT\n";
    let file = dir.path().join("messages.hl7");
    std::fs::write(&file, format!("{adt}{orm}{}", ORU.replace('\r', "\n"))).unwrap();
    let output = send_file(&mllp_send, app.mllp_port.unwrap(), file).await;
    assert!(output.status.success(), "mllp_send: {output:?}");
    let acks = String::from_utf8(output.stdout).unwrap();
    let accepted: Vec<&str> = acks
        .split(['\r', '\n'])
        .filter(|s| s.starts_with("MSA|AA|"))
        .collect();
    assert_eq!(
        accepted,
        ["MSA|AA|1817457", "MSA|AA|ORD1", "MSA|AA|MSG0001"],
        "{acks}"
    );
    assert_eq!(
        app.query_count("SELECT COUNT(*) FROM hl7_messages").await,
        3
    );
}

#[tokio::test]
async fn a_batch_file_is_answered_with_a_batch_of_acks() {
    let app = spawn_app().await;
    let batch = format!(
        "FHS|^~\\&|LAB\rBHS|^~\\&|LAB\rPID|1||orphan\r{}{}BTS|3\rFTS|1\r",
        ORU,
        ORU.replace("MSG0001", "MSG0002")
    );
    let response = app
        .client
        .post(format!("{}/hl7/v2", app.address))
        .header("Content-Type", HL7)
        .body(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let acks = response.text().await.unwrap();
    let msa: Vec<&str> = acks.split('\r').filter(|s| s.starts_with("MSA")).collect();
    assert_eq!(msa.len(), 3, "{acks}");
    // A segment before any MSH is refused on its own; the messages after it are taken.
    assert!(msa[0].starts_with("MSA|AR|"), "{acks}");
    assert_eq!(msa[1], "MSA|AA|MSG0001");
    assert_eq!(msa[2], "MSA|AA|MSG0002");
    assert!(
        acks.starts_with("BHS|") && acks.ends_with("BTS|3\r"),
        "{acks}"
    );
    assert_eq!(
        app.query_count("SELECT COUNT(*) FROM hl7_messages").await,
        2
    );
}

/// With an allow-list of source addresses, a connection from elsewhere is closed before
/// anything is read: no ACK, nothing stored.
#[tokio::test]
async fn only_allowed_sources_may_send_over_mllp() {
    let elsewhere = crate::helpers::spawn_app_with(|s| {
        s.hl7.allowed_sources = vec!["192.0.2.10".to_owned().try_into().unwrap()];
    })
    .await;
    let mut stream = connect(&elsewhere).await;
    let mut framed = vec![0x0b];
    framed.extend_from_slice(ORU.as_bytes());
    framed.extend_from_slice(&[0x1c, 0x0d]);
    let _ = stream.write_all(&framed).await;
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .expect("closed, not left hanging");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(
        elsewhere
            .query_count("SELECT COUNT(*) FROM hl7_messages")
            .await,
        0
    );
    let refused = elsewhere.audit_events("agent=127.0.0.1&outcome=4").await;
    assert!(
        refused[0]["outcomeDesc"]
            .as_str()
            .unwrap()
            .contains("not allowed"),
        "{refused:?}"
    );

    let here = crate::helpers::spawn_app_with(|s| {
        s.hl7.allowed_sources = vec!["127.0.0.1".to_owned().try_into().unwrap()];
    })
    .await;
    let mut stream = connect(&here).await;
    let ack = exchange(&mut stream, ORU.as_bytes()).await;
    assert_eq!(&segment(&ack, "MSA")[1..3], ["AA", "MSG0001"]);
    let received = here.audit_events("agent=127.0.0.1&outcome=0").await;
    assert!(
        received.iter().any(|e| e["source"]["site"] == "hl7v2"),
        "{received:?}"
    );
}
