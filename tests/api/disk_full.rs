//! The disk fills, then space comes back: while full, writes are refused in each protocol's own
//! form and `/readyz` says storage is not writable; once space is back, writes resume without a
//! restart. The service runs on a small tmpfs of its own (tests/small-disk/run, in a mount
//! namespace made by `unshare -rm`); where mount namespaces are not allowed, the test is
//! skipped and says so.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::request_log::Service;

/// Whether this machine lets an unprivileged process mount a tmpfs in a namespace of its own.
fn small_disks_possible() -> bool {
    let dir = tempfile::tempdir().unwrap();
    let probe = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs \"$0\""])
        .arg(dir.path())
        .output();
    let possible = probe.is_ok_and(|o| o.status.success());
    if !possible {
        eprintln!("skipping: mount namespaces are not allowed here (unshare -rm)");
    }
    possible
}

/// Creates `request` in `control` and waits for `answer` there.
async fn ask(control: &Path, request: &str, answer: &str) {
    std::fs::write(control.join(request), b"").unwrap();
    for _ in 0..200 {
        if control.join(answer).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the small disk helper did not answer `{request}`");
}

struct Doors<'a> {
    service: &'a Service,
    client: reqwest::Client,
}

impl Doors<'_> {
    async fn create_patient(&self) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/fhir/Patient", self.service.address))
            .header("content-type", "application/fhir+json")
            .body(json!({"resourceType": "Patient", "gender": "female"}).to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn hl7_ack_code(&self, control_id: &str) -> String {
        let message = format!(
            "MSH|^~\\&|LAB|HOSP|PROGNOSTICS|ONC|20240105083000||ORU^R01^ORU_R01|{control_id}|P|2.5.1\r\
             PID|1||MRN77^^^HOSP^MR||DOE^JANE||19650101|F\r\
             OBR|1||LAB77|2532-0^LDH^LN|||20240105070000\r\
             OBX|1|NM|2532-0^Lactate dehydrogenase^LN||310|U/L|140-280|H|||F\r"
        );
        let ack = self
            .client
            .post(format!("{}/hl7/v2", self.service.address))
            .header("content-type", "x-application/hl7-v2+er7")
            .body(message)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let msa = ack
            .split(['\r', '\n'])
            .find(|s| s.starts_with("MSA|"))
            .unwrap_or_else(|| panic!("an ACK: {ack}"));
        msa.split('|').nth(1).unwrap().to_owned()
    }

    /// STOW-RS of `instance`: the status and the first Failure Reason (0008,1197), if any.
    async fn stow(&self, instance: &[u8]) -> (u16, Option<u64>) {
        let response = self
            .client
            .post(format!("{}/dicomweb/studies", self.service.address))
            .header(
                "content-type",
                format!(
                    "multipart/related; type=\"application/dicom\"; boundary={}",
                    crate::dicomweb::BOUNDARY
                ),
            )
            .body(crate::dicomweb::multipart(&[instance]))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let reason = crate::dicomweb::sequence(&body, "00081198")
            .first()
            .and_then(|f| crate::dicomweb::value(f, "00081197").as_u64());
        (status, reason)
    }

    async fn readyz(&self) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}/readyz", self.service.address))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }
}

#[tokio::test]
async fn after_the_disk_fills_and_space_comes_back_writes_resume_without_a_restart() {
    if !small_disks_possible() {
        return;
    }
    let Some(ct) = crate::helpers::pydicom_file("CT_small.dcm") else {
        return;
    };
    let control = tempfile::tempdir().unwrap();
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/small-disk/run");
    let launch = format!("exec unshare -rm {} \"$0\" \"$@\"", helper.display());
    let service = Service::start_limited(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &[
            ("PROGNOSTICS_INFERENCE__ENABLED", "false"),
            ("TEST_SMALL_DISK_CONTROL", control.path().to_str().unwrap()),
        ],
        false,
        Some(&launch),
    )
    .await;
    let doors = Doors {
        service: &service,
        client: reqwest::Client::new(),
    };
    assert_eq!(doors.create_patient().await.0, 201);
    assert_eq!(doors.hl7_ack_code("FULL0001").await, "AA");

    ask(control.path(), "fill", "filled").await;
    let (status, ready) = doors.readyz().await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["checks"]["storage"], "fail", "{ready}");
    // Out of resources (A700): the file could not be stored, and nothing says it was.
    assert_eq!(doors.stow(&ct).await, (409, Some(0xA700)));
    if service.database.is_none() {
        // The embedded database is on the full disk (PostgreSQL keeps its own).
        let (status, outcome) = doors.create_patient().await;
        assert_eq!(status, 503, "{outcome}");
        assert!(outcome.to_string().contains("storage is full"), "{outcome}");
        let code = doors.hl7_ack_code("FULL0002").await;
        assert!(code == "AR" || code == "AE", "{code}");
    }

    ask(control.path(), "free", "freed").await;
    let (status, ready) = doors.readyz().await;
    assert_eq!(status, 200, "{ready}");
    for _ in 0..3 {
        let (status, body) = doors.create_patient().await;
        assert_eq!(status, 201, "writes resume: {body}");
    }
    assert_eq!(doors.hl7_ack_code("FULL0003").await, "AA");
    assert_eq!(doors.stow(&ct).await, (200, None));
}
