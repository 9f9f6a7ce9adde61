//! Replicas on one PostgreSQL database: separate `serve` processes that match patients without
//! making two of one, whose read caches follow each other's writes, and that take over each
//! other's unfinished assessments. Skipped without `TEST_DATABASE_URL` (the embedded SQLite
//! database admits one process: its lock file refuses a second).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::request_log::Service;

/// `count` replicas of the service with every door open and short job leases, when the tests
/// run on PostgreSQL.
pub(crate) async fn replicas(count: usize) -> Option<Vec<Service>> {
    if std::env::var_os("TEST_DATABASE_URL").is_none() {
        eprintln!("skipping: replicas need PostgreSQL (TEST_DATABASE_URL)");
        return None;
    }
    let first = Service::start_with(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        &[
            ("PROGNOSTICS_INFERENCE__ENABLED", "false"),
            ("PROGNOSTICS_RISK__JOB_LEASE_SECS", "2"),
        ],
        true,
    )
    .await;
    let mut all = vec![first];
    while all.len() < count {
        let next = all[0].replica().await;
        all.push(next);
    }
    Some(all)
}

async fn two_replicas() -> Option<(Service, Service)> {
    let mut two = replicas(2).await?;
    let second = two.pop()?;
    Some((two.pop()?, second))
}

/// The JSON body a GET of `url` answers with.
async fn json_at(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// Sends `messages` over one MLLP connection and returns the ACKs' MSA-1 codes.
/// Creates `resource` on `service`, answering the resource as stored.
async fn create_on(client: &reqwest::Client, service: &Service, resource: &Value) -> Value {
    let created = client
        .post(format!(
            "{}/fhir/{}",
            service.address,
            resource["resourceType"].as_str().unwrap()
        ))
        .header("content-type", "application/fhir+json")
        .body(resource.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    created.json().await.unwrap()
}

async fn send_hl7(port: u16, messages: Vec<String>) -> Vec<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut codes = Vec::new();
    for message in messages {
        let mut framed = vec![0x0b];
        framed.extend_from_slice(message.as_bytes());
        framed.extend_from_slice(&[0x1c, 0x0d]);
        stream.write_all(&framed).await.unwrap();
        let mut ack = Vec::new();
        let mut byte = [0u8; 1];
        while !ack.ends_with(&[0x1c, 0x0d]) {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "ACK cut short");
            ack.push(byte[0]);
        }
        let ack = String::from_utf8_lossy(&ack).into_owned();
        let code = ack
            .split('\r')
            .find(|s| s.starts_with("MSA|"))
            .and_then(|s| s.split('|').nth(1))
            .unwrap_or_default()
            .to_owned();
        codes.push(code);
    }
    codes
}

/// Results about one new patient, `count` messages from `from` (distinct control ids).
fn results_about(patient: &str, from: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            format!(
                "MSH|^~\\&|LAB|HOSP|PROGNOSTICS|ONC|20240105083000||ORU^R01^ORU_R01|{from}{i}|P|2.5.1\r\
                 PID|1||{patient}^^^HOSP^MR||DOE^JANE||19650101|F\r\
                 OBR|1||{from}{i}|2532-0^LDH^LN|||20240105070000\r\
                 OBX|1|NM|2532-0^Lactate dehydrogenase^LN||310|U/L|140-280|H|||F\r"
            )
        })
        .collect()
}

#[tokio::test]
async fn two_replicas_receiving_results_about_new_patients_make_one_patient_each() {
    let Some((first, second)) = two_replicas().await else {
        return;
    };
    let client = reqwest::Client::new();
    let ports = [
        first.port_of("HL7 v2 MLLP listener listening"),
        second.port_of("HL7 v2 MLLP listener listening"),
    ];
    // Each new patient's results arrive at both replicas at once, over two connections each.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let patients: Vec<String> = (0..8).map(|i| format!("RACE{i}{}", &run[..12])).collect();
    let mut sending = Vec::new();
    for (p, patient) in patients.iter().enumerate() {
        for (replica, port) in ports.iter().enumerate() {
            for connection in 0..2 {
                let from = format!("{}P{p}R{replica}C{connection}N", &run[..8]);
                let messages = results_about(patient, &from, 3);
                sending.push(tokio::spawn(send_hl7(*port, messages)));
            }
        }
    }
    for sent in sending {
        assert!(sent.await.unwrap().iter().all(|c| c == "AA"));
    }
    for patient in &patients {
        let found: Value = json_at(
            &client,
            format!(
                "{}/fhir/Patient?identifier={patient}&_total=accurate",
                first.address
            ),
        )
        .await;
        assert_eq!(found["total"], 1, "patient {patient}: {found}");
        let id = found["entry"][0]["resource"]["id"].as_str().unwrap();
        let results: Value = json_at(
            &client,
            format!(
                "{}/fhir/Observation?subject=Patient/{id}&_total=accurate",
                second.address
            ),
        )
        .await;
        assert_eq!(results["total"], 12, "results of {patient}");
    }
}

#[tokio::test]
async fn conditional_creates_on_two_replicas_make_one_resource() {
    let Some((first, second)) = two_replicas().await else {
        return;
    };
    let client = reqwest::Client::new();
    let identifier = format!("urn:replica-test|{}", uuid::Uuid::new_v4().simple());
    let (system, value) = identifier.split_once('|').unwrap();
    let patient = json!({
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": value}],
        "gender": "female",
    });
    let mut creating = Vec::new();
    for i in 0..16 {
        let address = if i % 2 == 0 {
            &first.address
        } else {
            &second.address
        };
        let request = client
            .post(format!("{address}/fhir/Patient"))
            .header("content-type", "application/fhir+json")
            .header("if-none-exist", format!("identifier={identifier}"))
            .body(patient.to_string());
        creating.push(tokio::spawn(request.send()));
    }
    let mut created = 0;
    for response in creating {
        let status = response.await.unwrap().unwrap().status().as_u16();
        assert!(status == 200 || status == 201, "{status}");
        created += usize::from(status == 201);
    }
    assert_eq!(created, 1);
    let found: Value = json_at(
        &client,
        format!(
            "{}/fhir/Patient?identifier={identifier}&_total=accurate",
            second.address
        ),
    )
    .await;
    assert_eq!(found["total"], 1, "{found}");
}

#[tokio::test]
async fn a_replica_reads_what_another_replica_wrote_not_its_cached_version() {
    let Some((first, second)) = two_replicas().await else {
        return;
    };
    let client = reqwest::Client::new();
    let created = create_on(
        &client,
        &first,
        &json!({"resourceType": "Patient", "gender": "female"}),
    )
    .await;
    let path = format!("/fhir/Patient/{}", created["id"].as_str().unwrap());
    let version_on = |service: &Service| {
        let request = client.get(format!("{}{path}", service.address));
        async move {
            let read: Value = request.send().await.unwrap().json().await.unwrap();
            read["meta"]["versionId"].as_str().unwrap().to_owned()
        }
    };
    for version in 2..=6 {
        // Read (and cached) on the second replica, then changed on the first.
        for _ in 0..3 {
            assert_eq!(version_on(&second).await, (version - 1).to_string());
        }
        let mut changed = created.clone();
        changed["gender"] = json!(if version % 2 == 0 { "male" } else { "female" });
        let updated = client
            .put(format!("{}{path}", first.address))
            .header("content-type", "application/fhir+json")
            .body(changed.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(updated.status(), 200);
        // The second replica's cache hears of the write within moments.
        let mut seen = String::new();
        for _ in 0..100 {
            seen = version_on(&second).await;
            if seen == version.to_string() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(seen, version.to_string(), "the second replica's read");
    }
}

#[tokio::test]
async fn a_replica_searching_again_finds_what_another_replica_wrote() {
    let Some((first, second)) = two_replicas().await else {
        return;
    };
    let client = reqwest::Client::new();
    let patient = create_on(
        &client,
        &first,
        &json!({"resourceType": "Patient", "gender": "female"}),
    )
    .await;
    let subject = format!("Patient/{}", patient["id"].as_str().unwrap());
    let search = format!("{}/fhir/Observation?subject={subject}", second.address);
    for found in 0..4u64 {
        // Searched (and its page cached) on the second replica, then added to on the first.
        for _ in 0..3 {
            assert_eq!(json_at(&client, search.clone()).await["total"], found);
        }
        let observation = json!({
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2532-0"}]},
            "subject": {"reference": subject},
            "valueQuantity": {"value": 300 + found, "unit": "U/L"},
        });
        let created = client
            .post(format!("{}/fhir/Observation", first.address))
            .header("content-type", "application/fhir+json")
            .body(observation.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let mut seen = Value::Null;
        for _ in 0..100 {
            seen = json_at(&client, search.clone()).await["total"].clone();
            if seen == found + 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(seen, found + 1, "the second replica's search");
    }
}

#[tokio::test]
async fn a_replica_takes_over_the_assessment_of_one_that_died() {
    let Some(database) = crate::helpers::fresh_postgres_database().await else {
        eprintln!("skipping: replicas need PostgreSQL (TEST_DATABASE_URL)");
        return;
    };
    let short_lease = |s: &mut prognostics::config::Settings| s.risk.job_lease_secs = 2;
    let replica = crate::helpers::spawn_app_in(
        tempfile::tempdir().unwrap(),
        Some(database.clone()),
        short_lease,
    )
    .await;
    let patient = crate::risk_assessment::patient_with_record(&replica, true).await;
    let request = prognostics::pipeline::risk::AssessmentRequest {
        patient: prognostics::domain::ResourceId::parse(&patient).unwrap(),
        model: None,
        study: None,
        horizons: vec![
            prognostics::domain::Horizon::new(5.0, prognostics::domain::TimeUnit::Years).unwrap(),
        ],
    };
    // An assessment another replica accepted and holds, left running when it died: its lease
    // runs out in 1.5 s.
    let now = chrono::Utc::now().timestamp_millis();
    replica
        .execute(&format!(
            "INSERT INTO risk_jobs (id, request, base, status, created_ms, lease_holder, \
               lease_until_ms) VALUES ('held-by-the-dead', '{}', 'http://example.org/fhir', \
               'running', {now}, 'a-replica-that-died', {})",
            request.to_json(),
            now + 1500
        ))
        .await;
    // Not taken before the lease runs out; then this replica runs it, once.
    let status = || replica.get("$risk-assessment-status/held-by-the-dead");
    assert_eq!(status().await.status(), 202);
    let mut answered = 0;
    for _ in 0..200 {
        answered = status().await.status().as_u16();
        if answered != 202 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered, 200);
    assert_eq!(
        replica
            .query_count(
                "SELECT COUNT(*) FROM risk_jobs WHERE id = 'held-by-the-dead' \
                 AND lease_holder = 'a-replica-that-died'"
            )
            .await,
        0
    );
    let assessments = replica
        .search(&format!(
            "RiskAssessment?subject=Patient/{patient}&_total=accurate"
        ))
        .await;
    assert_eq!(assessments["total"], 1, "{assessments}");
}
