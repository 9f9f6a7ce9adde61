//! Nothing acknowledged is lost: the service is killed (`kill -9`) while it takes mixed ingest
//! (FHIR creates and transactions, HL7 over MLLP, STOW-RS and C-STORE instances, asynchronous
//! assessments), restarted on the same data, and what was acknowledged (201/200/202, AA, C-STORE
//! success) is compared with what is there: each exactly once, and nothing sent twice.
//! `TEST_CRASH_KILLS` sets the number of kills (default 10 on each database; scripts/crash-test
//! runs 100).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::request_log::Service;

const IDENTIFIER_SYSTEM: &str = "urn:crash-test:id";
const CT_INSTANCE: &[u8] = b"1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322";

/// What was sent, and what of it was acknowledged.
#[derive(Default)]
pub(crate) struct Ledger {
    /// Patient identifiers sent by create and by transaction: (value, acknowledged).
    pub(crate) patients: Vec<(String, bool)>,
    /// HL7 message control ids: (id, acknowledged AA).
    pub(crate) messages: Vec<(String, bool)>,
    /// SOP Instance UIDs sent by STOW-RS and C-STORE: (uid, acknowledged).
    pub(crate) instances: Vec<(String, bool)>,
    /// Status paths of accepted asynchronous assessments.
    pub(crate) jobs: Vec<String>,
}

/// Mixed ingest sent to one address (the service, or a load balancer in front of replicas).
pub(crate) struct Traffic {
    pub(crate) address: String,
    pub(crate) mllp_port: u16,
    pub(crate) dicom_port: u16,
    /// CT_small.dcm, sent under new SOP Instance UIDs.
    pub(crate) ct: Arc<Vec<u8>>,
    /// The Patient the assessments are about.
    pub(crate) patient: String,
    pub(crate) ledger: Arc<Mutex<Ledger>>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) client: reqwest::Client,
}

fn unique() -> String {
    format!(
        "{:020}",
        uuid::Uuid::new_v4().as_u128() % 10u128.pow(19) + 10u128.pow(19)
    )
}

impl Traffic {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    /// Records `key` as sent, not yet acknowledged, in the list `list` picks.
    fn sent(&self, list: impl FnOnce(&mut Ledger) -> &mut Vec<(String, bool)>, key: &str) {
        list(&mut self.ledger.lock().unwrap()).push((key.to_owned(), false));
    }

    /// Creates Patients, one per request, or (`transaction`) in a transaction Bundle with an
    /// Observation of theirs; records each identifier sent and whether it was acknowledged.
    pub(crate) async fn fhir_writes(self: Arc<Self>, transaction: bool) {
        while self.running() {
            let value = unique();
            self.sent(|ledger| &mut ledger.patients, &value);
            let patient = json!({"resourceType": "Patient", "gender": "female",
                "identifier": [{"system": IDENTIFIER_SYSTEM, "value": value}]});
            let (path, body, created) = if transaction {
                let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                    {"fullUrl": "urn:uuid:5f1c0000-0000-4000-8000-000000000001",
                     "resource": patient, "request": {"method": "POST", "url": "Patient"}},
                    {"resource": {"resourceType": "Observation", "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "2532-0"}]},
                        "subject": {"reference": "urn:uuid:5f1c0000-0000-4000-8000-000000000001"},
                        "valueQuantity": {"value": 300, "unit": "U/L",
                            "system": "http://unitsofmeasure.org", "code": "U/L"}},
                     "request": {"method": "POST", "url": "Observation"}}]});
                ("fhir", bundle, 200)
            } else {
                ("fhir/Patient", patient, 201)
            };
            let sent = self
                .client
                .post(format!("{}/{path}", self.address))
                .header("content-type", "application/fhir+json")
                .body(body.to_string())
                .send()
                .await;
            if sent.is_ok_and(|r| r.status() == created) {
                acknowledge(&mut self.ledger.lock().unwrap().patients, &value);
            }
        }
    }

    /// Sends ORU messages over MLLP, connecting again when a connection is lost (behind a
    /// load balancer, to another replica).
    pub(crate) async fn messages(self: Arc<Self>) {
        while self.running() {
            match tokio::net::TcpStream::connect(("127.0.0.1", self.mllp_port)).await {
                Ok(stream) => self.messages_over(stream).await,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Sends messages over `stream` until it fails or the traffic stops.
    async fn messages_over(&self, mut stream: tokio::net::TcpStream) {
        while self.running() {
            let id = format!("C{}", &unique()[..18]);
            self.sent(|ledger| &mut ledger.messages, &id);
            let message = format!(
                "MSH|^~\\&|LAB|HOSP|PROGNOSTICS|ONC|20240105083000||ORU^R01^ORU_R01|{id}|P|2.5.1\r\
                 PID|1||CRASH1^^^HOSP^MR||DOE^JANE||19650101|F\r\
                 OBR|1||{id}|2532-0^LDH^LN|||20240105070000\r\
                 OBX|1|NM|2532-0^Lactate dehydrogenase^LN||310|U/L|140-280|H|||F\r"
            );
            let mut framed = vec![0x0b];
            framed.extend_from_slice(message.as_bytes());
            framed.extend_from_slice(&[0x1c, 0x0d]);
            if stream.write_all(&framed).await.is_err() {
                return;
            }
            let mut ack = Vec::new();
            let mut byte = [0u8; 1];
            while !ack.ends_with(&[0x1c, 0x0d]) {
                match stream.read(&mut byte).await {
                    Ok(1) => ack.push(byte[0]),
                    _ => return,
                }
            }
            if String::from_utf8_lossy(&ack).contains(&format!("MSA|AA|{id}")) {
                acknowledge(&mut self.ledger.lock().unwrap().messages, &id);
            }
        }
    }

    /// CT_small.dcm under a new SOP Instance UID (of the same length).
    fn new_instance(&self) -> (String, Vec<u8>) {
        let uid = format!("1.3.6.1.4.1.5962.1.1.1.1.1.{}", unique());
        assert_eq!(uid.len(), CT_INSTANCE.len());
        let mut file = self.ct.to_vec();
        let mut at = 0;
        while let Some(found) = file[at..]
            .windows(CT_INSTANCE.len())
            .position(|w| w == CT_INSTANCE)
        {
            let start = at + found;
            file[start..start + uid.len()].copy_from_slice(uid.as_bytes());
            at = start + uid.len();
        }
        (uid, file)
    }

    pub(crate) async fn stow(self: Arc<Self>) {
        while self.running() {
            let (uid, file) = self.new_instance();
            self.sent(|ledger| &mut ledger.instances, &uid);
            let sent = self
                .client
                .post(format!("{}/dicomweb/studies", self.address))
                .header(
                    "content-type",
                    format!(
                        "multipart/related; type=\"application/dicom\"; boundary={}",
                        crate::dicomweb::BOUNDARY
                    ),
                )
                .body(crate::dicomweb::multipart(&[&file]))
                .send()
                .await;
            if sent.is_ok_and(|r| r.status() == 200) {
                acknowledge(&mut self.ledger.lock().unwrap().instances, &uid);
            }
        }
    }

    pub(crate) async fn c_store(self: Arc<Self>) {
        let dir = tempfile::tempdir().unwrap();
        while self.running() {
            let (uid, file) = self.new_instance();
            self.sent(|ledger| &mut ledger.instances, &uid);
            let path = dir.path().join(format!("{uid}.dcm"));
            std::fs::write(&path, file).unwrap();
            let args = [
                "-aec".to_owned(),
                "PROGNOSTICS".to_owned(),
                "127.0.0.1".to_owned(),
                self.dicom_port.to_string(),
                path.display().to_string(),
            ];
            let sent = tokio::task::spawn_blocking(move || {
                std::process::Command::new("storescu").args(args).output()
            })
            .await
            .unwrap();
            // storescu exits 0 only when every C-STORE-RSP said success.
            if sent.is_ok_and(|o| o.status.success()) {
                acknowledge(&mut self.ledger.lock().unwrap().instances, &uid);
            }
        }
    }

    pub(crate) async fn assessments(self: Arc<Self>) {
        while self.running() {
            let sent = self
                .client
                .post(format!(
                    "{}/fhir/Patient/{}/$risk-assessment",
                    self.address, self.patient
                ))
                .header("content-type", "application/fhir+json")
                .header("prefer", "respond-async")
                .body(json!({"resourceType": "Parameters"}).to_string())
                .send()
                .await;
            if let Ok(response) = sent
                && response.status() == 202
                && let Some(location) = response.headers().get("content-location")
            {
                // The path alone: any replica answers for the job.
                let path = url::Url::parse(location.to_str().unwrap())
                    .unwrap()
                    .path()
                    .to_owned();
                self.ledger.lock().unwrap().jobs.push(path);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn acknowledge(sent: &mut [(String, bool)], key: &str) {
    if let Some(entry) = sent.iter_mut().rev().find(|(k, _)| k == key) {
        entry.1 = true;
    }
}

/// The first column of the first row of `sql` on the service's database.
pub(crate) async fn count(service: &Service, sql: &str) -> i64 {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&service.database_url())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap()
}

/// Checks the ledger against what the restarted service holds.
pub(crate) async fn check(service: &Service, ledger: &Ledger) {
    let client = reqwest::Client::new();
    for (value, acknowledged) in &ledger.patients {
        let found: Value = client
            .get(format!(
                "{}/fhir/Patient?identifier={IDENTIFIER_SYSTEM}|{value}&_summary=count",
                service.address
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let total = found["total"].as_u64().unwrap();
        if *acknowledged {
            assert_eq!(total, 1, "acknowledged patient {value}");
        } else {
            assert!(total <= 1, "patient {value} stored {total} times");
        }
    }
    check_rows(service, &ledger.messages, "hl7_messages", "control_id").await;
    check_rows(
        service,
        &ledger.instances,
        "dicom_instances",
        "sop_instance_uid",
    )
    .await;
}

/// Each acknowledged key is in `table` once; each other key at most once.
async fn check_rows(service: &Service, sent: &[(String, bool)], table: &str, column: &str) {
    for (key, acknowledged) in sent {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = '{key}'");
        let stored = count(service, &sql).await;
        if *acknowledged {
            assert_eq!(stored, 1, "acknowledged, in {table}: {key}");
        } else {
            assert!(stored <= 1, "{key} is in {table} {stored} times");
        }
    }
}

/// Every accepted assessment comes to an answer after the restart (none is lost as 404 or
/// left accepted for ever).
pub(crate) async fn jobs_finish(service: &Service, jobs: &[String]) {
    let client = reqwest::Client::new();
    for path in jobs {
        let mut status = 0;
        for _ in 0..600 {
            status = client
                .get(format!("{}{path}", service.address))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            if status != 202 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(status != 202 && status != 404, "job {path}: {status}");
    }
}

#[tokio::test]
async fn nothing_acknowledged_is_lost_or_doubled_across_kill_9() {
    let dcmtk = crate::dimse::dcmtk_available();
    let Some(ct) = crate::helpers::pydicom_file("CT_small.dcm") else {
        return;
    };
    let kills: usize = std::env::var("TEST_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut service = Service::start_with(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        &[
            ("PROGNOSTICS_INFERENCE__ENABLED", "false"),
            // On PostgreSQL a restarted process takes over its predecessor's assessments once
            // their leases run out.
            ("PROGNOSTICS_RISK__JOB_LEASE_SECS", "2"),
        ],
        true,
    )
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let patient: Value = client
        .post(format!("{}/fhir/Patient", service.address))
        .header("content-type", "application/fhir+json")
        .body(
            json!({"resourceType": "Patient", "gender": "female", "birthDate": "1960-01-01"})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let patient = patient["id"].as_str().unwrap().to_owned();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let ct = Arc::new(ct);
    let mut delays = (0..kills).map(|k| 150 + (k as u64 * 7919) % 600);
    for kill in 0..kills {
        let traffic = Arc::new(Traffic {
            address: service.address.clone(),
            mllp_port: service.port_of("HL7 v2 MLLP listener listening"),
            dicom_port: service.port_of("DICOM storage SCP listening"),
            ct: ct.clone(),
            patient: patient.clone(),
            ledger: ledger.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            client: client.clone(),
        });
        let mut tasks = vec![
            tokio::spawn(traffic.clone().fhir_writes(false)),
            tokio::spawn(traffic.clone().fhir_writes(true)),
            tokio::spawn(traffic.clone().messages()),
            tokio::spawn(traffic.clone().stow()),
            tokio::spawn(traffic.clone().assessments()),
        ];
        if dcmtk {
            tasks.push(tokio::spawn(traffic.clone().c_store()));
        }
        tokio::time::sleep(Duration::from_millis(delays.next().unwrap())).await;
        service.kill();
        traffic.stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.unwrap();
        }
        service.restart().await;
        let ledger = ledger.lock().unwrap();
        let acknowledged = ledger.patients.iter().filter(|p| p.1).count()
            + ledger.messages.iter().filter(|m| m.1).count()
            + ledger.instances.iter().filter(|i| i.1).count();
        eprintln!("kill {}: {acknowledged} acknowledged so far", kill + 1);
    }
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    check(&service, &ledger).await;
    jobs_finish(&service, &ledger.jobs).await;
    let acknowledged = |sent: &[(String, bool)]| sent.iter().filter(|s| s.1).count();
    eprintln!(
        "{kills} kills: {} of {} patients, {} of {} messages, {} of {} instances acknowledged, \
         {} assessments accepted; none lost or doubled",
        acknowledged(&ledger.patients),
        ledger.patients.len(),
        acknowledged(&ledger.messages),
        ledger.messages.len(),
        acknowledged(&ledger.instances),
        ledger.instances.len(),
        ledger.jobs.len()
    );
    assert!(
        acknowledged(&ledger.patients) > kills,
        "traffic got through"
    );
}
