//! HL7 v2 throughput, two figures.
//!
//! `hl7 parse SECONDS FILE…`: parse + map, in one thread, with no database: each message read
//! and checked (`read_message`), its content read (`read_content`), turned into FHIR resources
//! (Patient, Observations or ServiceRequests) and serialised to JSON: the CPU work the service
//! does per message before it writes. Prints `{"messages_per_s": …, "messages": n}`.
//!
//! `hl7 mllp SECONDS`: the service in this process (release build, SQLite in a temporary
//! folder), MLLP round trips with ACKs over loopback at 1 and 16 connections, each connection
//! sending ORU^R01 messages (4 results, 200 patients, unique control ids) one after the other
//! and waiting for each AA: every message stored and filed before its ACK.
// A load generator is the service's client: its tasks need no request span.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prognostics::config::Settings;
use prognostics::domain::ResourceId;
use prognostics::hl7::content::{DateContext, read_content};
use prognostics::hl7::datetime::SiteZone;
use prognostics::hl7::message::read_message;
use prognostics::report::{
    IdentifierSystems, ResultContext, observation_from_hl7, patient_from_hl7,
    service_request_from_hl7,
};
use prognostics::startup::Application;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Parses and maps one message; the number of resources made (0 when it was refused).
fn parse_and_map(bytes: &[u8], dates: &DateContext, systems: IdentifierSystems<'_>) -> usize {
    let Ok(message) = read_message(bytes) else {
        return 0;
    };
    let Ok(content) = read_content(&message, dates) else {
        return 0;
    };
    let subject = ResourceId::generate();
    let mut json = Vec::with_capacity(4096);
    let patient = patient_from_hl7(&subject, &content.patient, systems);
    serde_json::to_writer(&mut json, &patient).unwrap();
    let context = ResultContext {
        subject: &subject,
        control_id: &message.header.control_id,
        systems,
    };
    for draft in &content.observations {
        let resource = observation_from_hl7(draft, &context);
        serde_json::to_writer(&mut json, &resource).unwrap();
    }
    for order in &content.orders {
        let resource = service_request_from_hl7(order, &subject, systems);
        serde_json::to_writer(&mut json, &resource).unwrap();
    }
    std::hint::black_box(&json);
    1 + content.observations.len() + content.orders.len()
}

fn parse(seconds: f64, files: &[String]) {
    let messages: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let dates = DateContext {
        zone: SiteZone::Fixed(chrono::FixedOffset::east_opt(0).unwrap()),
        now: chrono::Utc::now(),
    };
    let namespaces = BTreeMap::new();
    let systems = IdentifierSystems {
        by_namespace: &namespaces,
    };
    for m in &messages {
        assert!(
            parse_and_map(m, &dates, systems) > 0,
            "every benchmark message maps"
        );
    }
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        for m in &messages {
            parse_and_map(m, &dates, systems);
        }
        done += messages.len() as u64;
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    println!(
        "{{\"messages_per_s\": {rate:.1}, \"messages\": {}}}",
        messages.len()
    );
}

fn oru(control_id: u64) -> Vec<u8> {
    let patient = control_id % 200;
    let mut framed = vec![0x0b];
    framed.extend_from_slice(
        format!(
            "MSH|^~\\&|LAB|HOSP|PROGNOSTICS|ONC|20240105083000||ORU^R01^ORU_R01|B{control_id}|P|2.5.1\r\
PID|1||MRN{patient}^^^HOSP^MR||DOE^JANE||19650412|F\r\
OBR|1||LAB{control_id}|24331-1^Lipid panel^LN|||20240105070000\r\
OBX|1|NM|2093-3^Cholesterol^LN||196|mg/dL^^UCUM|<200|N|||F\r\
OBX|2|NM|2085-9^HDL^LN||62|mg/dL^^UCUM|>40|N|||F\r\
OBX|3|NM|2571-8^Triglyceride^LN||72|mg/dL^^UCUM|35-150|N|||F\r\
OBX|4|NM|13457-7^LDL^LN||134|mg/dL^^UCUM|0-100|H|||F\r"
        )
        .as_bytes(),
    );
    framed.extend_from_slice(&[0x1c, 0x0d]);
    framed
}

async fn connection(port: u16, ids: Arc<AtomicU64>, until: Instant) -> u64 {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buffer = vec![0u8; 4096];
    let mut sent = 0;
    while Instant::now() < until {
        let id = ids.fetch_add(1, Ordering::Relaxed);
        stream.write_all(&oru(id)).await.unwrap();
        let mut ack = Vec::new();
        while !ack.ends_with(&[0x1c, 0x0d]) {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the service answers");
            ack.extend_from_slice(&buffer[..n]);
        }
        assert!(
            ack.windows(7).any(|w| w == b"MSA|AA|"),
            "{}",
            String::from_utf8_lossy(&ack)
        );
        sent += 1;
    }
    sent
}

async fn mllp(seconds: f64) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.storage.data_dir = dir.path().to_path_buf();
    settings.dicom.enabled = false;
    settings.inference.enabled = false;
    settings.hl7.listen = "127.0.0.1:0".parse().unwrap();
    let app = Application::build(&settings).await.expect("service starts");
    let port = app.mllp_port().unwrap();
    tokio::spawn(app.run_until_stopped());
    let ids = Arc::new(AtomicU64::new(0));
    for connections in [1u64, 16] {
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(connection(port, Arc::clone(&ids), until)))
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{{\"connections\": {connections}, \"round_trips_per_s\": {:.1}, \"messages\": {total}}}",
            total as f64 / elapsed
        );
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    match args.first().map(String::as_str) {
        Some("parse") => parse(seconds, &args[2..]),
        Some("mllp") => mllp(seconds).await,
        _ => panic!("usage: hl7 parse SECONDS FILE… | hl7 mllp SECONDS"),
    }
}
