//! Three replicas on one PostgreSQL database behind HAProxy (Debian's package), as a hospital
//! runs the service for availability: mixed ingest through the balancer (FHIR creates and
//! transactions, HL7 over MLLP, STOW-RS and C-STORE, asynchronous assessments), one replica
//! killed (`kill -9`) mid-load, and then what was acknowledged is compared with what is there:
//! each exactly once, nothing twice, and every accepted assessment answered (those the dead
//! replica held are taken over when their leases run out).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::crash::{Ledger, Traffic, check, jobs_finish};
use crate::request_log::Service;

fn haproxy() -> Option<&'static str> {
    let found = std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("haproxy");
    }
    assert!(
        std::env::var_os("TEST_REQUIRE_PEERS").is_none(),
        "HAProxy is missing: run scripts/install-test-deps"
    );
    eprintln!("skipping: HAProxy is not installed");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// HAProxy in front of `replicas`: HTTP balanced per request (health-checked on /healthz),
/// MLLP and DICOM per connection. Returns the child and its (HTTP, MLLP, DICOM) ports.
fn start_balancer(
    binary: &str,
    dir: &std::path::Path,
    replicas: &[&Service],
) -> (std::process::Child, u16, u16, u16) {
    let (http, mllp, dicom) = (free_port(), free_port(), free_port());
    let servers = |port_of: &dyn Fn(&Service) -> u16| {
        replicas
            .iter()
            .enumerate()
            .map(|(i, r)| format!("  server r{i} 127.0.0.1:{} check\n", port_of(r)))
            .collect::<String>()
    };
    let http_port = |s: &Service| s.address.rsplit(':').next().unwrap().parse().unwrap();
    let config = format!(
        "global\n  maxconn 2048\n\
         defaults\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  \
         retries 3\n  option redispatch\n  default-server inter 300ms fall 1 rise 2\n\
         frontend api\n  mode http\n  bind 127.0.0.1:{http}\n  default_backend api\n\
         backend api\n  mode http\n  balance roundrobin\n  option httpchk GET /healthz\n{}\
         frontend mllp\n  mode tcp\n  bind 127.0.0.1:{mllp}\n  default_backend mllp\n\
         backend mllp\n  mode tcp\n  balance roundrobin\n{}\
         frontend dicom\n  mode tcp\n  bind 127.0.0.1:{dicom}\n  default_backend dicom\n\
         backend dicom\n  mode tcp\n  balance roundrobin\n{}",
        servers(&http_port),
        servers(&|s| s.port_of("HL7 v2 MLLP listener listening")),
        servers(&|s| s.port_of("DICOM storage SCP listening")),
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let child = std::process::Command::new(binary)
        .args(["-db", "-q", "-f"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (child, http, mllp, dicom)
}

/// Kills the balancer with the test.
struct Balancer(std::process::Child);

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn three_replicas_behind_haproxy_lose_nothing_when_one_is_killed_mid_load() {
    let Some(binary) = haproxy() else {
        return;
    };
    let Some(ct) = crate::helpers::pydicom_file("CT_small.dcm") else {
        return;
    };
    let dcmtk = crate::dimse::dcmtk_available();
    let Some(mut replicas) = crate::replicas::replicas(3).await else {
        return;
    };
    let third = replicas.pop().unwrap();
    let mut second = replicas.pop().unwrap();
    let first = replicas.pop().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (child, http, mllp, dicom) = start_balancer(binary, dir.path(), &[&first, &second, &third]);
    let _balancer = Balancer(child);
    let address = format!("http://127.0.0.1:{http}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut patient = Value::Null;
    for _ in 0..100 {
        let created = client
            .post(format!("{address}/fhir/Patient"))
            .header("content-type", "application/fhir+json")
            .body(
                json!({"resourceType": "Patient", "gender": "female", "birthDate": "1960-01-01"})
                    .to_string(),
            )
            .send()
            .await;
        if let Ok(created) = created
            && created.status() == 201
        {
            patient = created.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let traffic = Arc::new(Traffic {
        address,
        mllp_port: mllp,
        dicom_port: dicom,
        ct: Arc::new(ct),
        patient: patient["id"]
            .as_str()
            .expect("the balancer answers")
            .to_owned(),
        ledger: ledger.clone(),
        stop: Arc::new(AtomicBool::new(false)),
        client,
    });
    let mut tasks = Vec::new();
    for _ in 0..2 {
        tasks.push(tokio::spawn(traffic.clone().fhir_writes(false)));
        tasks.push(tokio::spawn(traffic.clone().messages()));
    }
    tasks.push(tokio::spawn(traffic.clone().fhir_writes(true)));
    tasks.push(tokio::spawn(traffic.clone().stow()));
    tasks.push(tokio::spawn(traffic.clone().assessments()));
    if dcmtk {
        tasks.push(tokio::spawn(traffic.clone().c_store()));
    }
    let acknowledged = |ledger: &Ledger| {
        ledger.patients.iter().filter(|p| p.1).count()
            + ledger.messages.iter().filter(|m| m.1).count()
            + ledger.instances.iter().filter(|i| i.1).count()
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    second.kill();
    let at_kill = acknowledged(&ledger.lock().unwrap());
    tokio::time::sleep(Duration::from_secs(3)).await;
    traffic.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let total = acknowledged(&ledger);
    check(&first, &ledger).await;
    jobs_finish(&third, &ledger.jobs).await;
    eprintln!(
        "3 replicas, 1 killed: {total} acknowledged ({} after the kill), {} assessments \
         accepted; none lost or doubled",
        total - at_kill,
        ledger.jobs.len()
    );
    assert!(at_kill > 0, "traffic got through before the kill");
    assert!(total > at_kill, "traffic got through after the kill");
}
