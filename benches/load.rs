//! Many connections at once: the release binary (`prognostics serve`, its own process) under
//! 1,000 concurrent connections for 60 s on loopback: HTTP clients each on one keep-alive
//! connection doing a mix of reads by id, searches and creates, and MLLP clients each sending
//! ORU^R01 results over one connection. Every answer must be a 2xx (201 for a create, a
//! searchset for a search) or an AA; anything else, a timeout or a dropped connection counts as
//! an error. Prints each kind's count, errors, p50 and p99, and the service's peak resident
//! memory (VmHWM), sampled as it runs.
//!
//! `BENCH_DATABASE_URL` (a PostgreSQL server): on a fresh database there instead of SQLite.
//! `BENCH_CONNECTIONS` (1000), `BENCH_MLLP_CONNECTIONS` (of those, 150), `BENCH_SECONDS` (60),
//! `BENCH_PATIENTS` (200).

// A benchmark: its clients are plain tasks, and a failure should stop it loudly.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

// Only the seeded database of `common` is used here.
#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::seed::{fresh_postgres_database, seed};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What one kind of request saw.
#[derive(Default)]
struct Seen {
    latencies: Vec<Duration>,
    errors: u64,
}

impl Seen {
    fn add(&mut self, other: Seen) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
    }

    fn percentile(&mut self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        self.latencies.sort();
        let at = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[at].as_secs_f64() * 1000.0
    }
}

/// The service's resident memory now and at its peak, in MiB, from /proc.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One HTTP client on its own connection: reads, searches and creates in the ratio 6:2:2.
async fn http_client(
    base: String,
    patients: Arc<Vec<String>>,
    seed: usize,
    running: Arc<AtomicBool>,
) -> [Seen; 3] {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut seen: [Seen; 3] = Default::default();
    let mut n = seed;
    while running.load(Ordering::Relaxed) {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let patient = &patients[(n >> 33) % patients.len()];
        let kind = (n >> 20) % 10;
        let started = Instant::now();
        let (slot, ok) = match kind {
            0..=5 => {
                let answer = client.get(format!("{base}/Patient/{patient}")).send().await;
                (0, answer.is_ok_and(|r| r.status() == 200))
            }
            6 | 7 => {
                let answer = client
                    .get(format!(
                        "{base}/Observation?subject=Patient/{patient}&_count=10"
                    ))
                    .send()
                    .await;
                let ok = match answer {
                    Ok(r) if r.status() == 200 => r
                        .json::<Value>()
                        .await
                        .is_ok_and(|b| b["type"] == "searchset"),
                    _ => false,
                };
                (1, ok)
            }
            _ => {
                let observation = json!({"resourceType": "Observation", "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                    "subject": {"reference": format!("Patient/{patient}")},
                    "effectiveDateTime": "2026-02-01T08:00:00Z",
                    "valueQuantity": {"value": 12.5, "unit": "g/dL",
                        "system": "http://unitsofmeasure.org", "code": "g/dL"}});
                let answer = client
                    .post(format!("{base}/Observation"))
                    .header("content-type", "application/fhir+json")
                    .body(observation.to_string())
                    .send()
                    .await;
                (2, answer.is_ok_and(|r| r.status() == 201))
            }
        };
        seen[slot].latencies.push(started.elapsed());
        seen[slot].errors += u64::from(!ok);
    }
    seen
}

/// One MLLP client on its own connection, sending results and reading each ACK.
async fn mllp_client(port: u16, client: usize, running: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen::default();
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        seen.errors += 1;
        return seen;
    };
    let mut sent = 0u64;
    while running.load(Ordering::Relaxed) {
        sent += 1;
        let id = format!("L{client}N{sent}");
        let message = format!(
            "MSH|^~\\&|LAB|HOSP|PROGNOSTICS|ONC|20260105083000||ORU^R01^ORU_R01|{id}|P|2.5.1\r\
             PID|1||LOAD{}^^^HOSP^MR||DOE^JANE||19650101|F\r\
             OBR|1||{id}|2532-0^LDH^LN|||20260105070000\r\
             OBX|1|NM|2532-0^Lactate dehydrogenase^LN||310|U/L|140-280|H|||F\r",
            client % 50
        );
        let mut framed = vec![0x0b];
        framed.extend_from_slice(message.as_bytes());
        framed.extend_from_slice(&[0x1c, 0x0d]);
        let started = Instant::now();
        if stream.write_all(&framed).await.is_err() {
            seen.errors += 1;
            return seen;
        }
        let mut ack = Vec::with_capacity(256);
        let mut buffer = [0u8; 512];
        while !ack.ends_with(&[0x1c, 0x0d]) {
            match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer)).await {
                Ok(Ok(n)) if n > 0 => ack.extend_from_slice(&buffer[..n]),
                _ => {
                    seen.errors += 1;
                    return seen;
                }
            }
        }
        seen.latencies.push(started.elapsed());
        if !String::from_utf8_lossy(&ack).contains(&format!("MSA|AA|{id}")) {
            seen.errors += 1;
        }
    }
    seen
}

#[tokio::main]
async fn main() {
    let connections = setting("BENCH_CONNECTIONS", 1000);
    let mllp_connections = setting("BENCH_MLLP_CONNECTIONS", 150).min(connections);
    let seconds = setting("BENCH_SECONDS", 60) as u64;
    let patient_count = setting("BENCH_PATIENTS", 200);
    let scratch = tempfile::tempdir().unwrap();
    let (http_port, mllp_port) = (free_port(), free_port());
    let database = fresh_postgres_database().await;
    let backend = if database.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_prognostics"));
    command
        .arg("--data-dir")
        .arg(scratch.path())
        .arg("serve")
        .env("RUST_LOG", "warn")
        .env(
            "PROGNOSTICS_SERVER__LISTEN",
            format!("127.0.0.1:{http_port}"),
        )
        .env("PROGNOSTICS_HL7__LISTEN", format!("127.0.0.1:{mllp_port}"))
        .env(
            "PROGNOSTICS_HL7__MAX_CONNECTIONS",
            (mllp_connections + 16).to_string(),
        )
        .env("PROGNOSTICS_DICOM__ENABLED", "false")
        .env("PROGNOSTICS_INFERENCE__ENABLED", "false")
        .stdout(std::process::Stdio::null());
    if let Some(url) = &database {
        command.env("PROGNOSTICS_DATABASE__URL", url);
    }
    let mut service = command.spawn().expect("the service starts");
    let pid = service.id();
    let base = format!("http://127.0.0.1:{http_port}/fhir");
    let probe = reqwest::Client::new();
    let mut up = false;
    for _ in 0..600 {
        if probe
            .get(format!("http://127.0.0.1:{http_port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the service answers /healthz");
    eprintln!("seeding {patient_count} patients on {backend}");
    let patients = Arc::new(seed(&base, patient_count, None).await);
    let (_, idle_peak) = memory_mib(pid);

    let running = Arc::new(AtomicBool::new(true));
    let http_connections = connections - mllp_connections;
    let started = Instant::now();
    let http: Vec<_> = (0..http_connections)
        .map(|i| {
            tokio::spawn(http_client(
                base.clone(),
                Arc::clone(&patients),
                i * 7919 + 1,
                Arc::clone(&running),
            ))
        })
        .collect();
    let mllp: Vec<_> = (0..mllp_connections)
        .map(|i| tokio::spawn(mllp_client(mllp_port, i, Arc::clone(&running))))
        .collect();
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak_rss = Arc::clone(&peak_rss);
        let running = Arc::clone(&running);
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let (rss, _) = memory_mib(pid);
                peak_rss.fetch_max(rss as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    running.store(false, Ordering::Relaxed);
    let mut kinds: [Seen; 4] = Default::default();
    for task in http {
        for (slot, seen) in task.await.unwrap().into_iter().enumerate() {
            kinds[slot].add(seen);
        }
    }
    for task in mllp {
        kinds[3].add(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    sampler.await.unwrap();
    let (_, peak) = memory_mib(pid);
    let _ = service.kill();
    let _ = service.wait();

    println!(
        "\n{connections} connections ({http_connections} HTTP, {mllp_connections} MLLP) for \
         {seconds} s on {backend}, {} CPUs\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| traffic | requests | errors | requests/s | p50 | p99 |");
    println!("|---|---:|---:|---:|---:|---:|");
    let names = [
        "read by id: GET Patient/{id}",
        "search: GET Observation?subject=…&_count=10",
        "create: POST Observation",
        "HL7 v2 ORU^R01 over MLLP (AA)",
    ];
    let mut errors = 0;
    let mut total = 0;
    for (name, seen) in names.iter().zip(kinds.iter_mut()) {
        errors += seen.errors;
        total += seen.latencies.len();
        let (p50, p99) = (seen.percentile(0.5), seen.percentile(0.99));
        println!(
            "| {name} | {} | {} | {:.0} | {p50:.2} ms | {p99:.2} ms |",
            seen.latencies.len(),
            seen.errors,
            seen.latencies.len() as f64 / elapsed,
        );
    }
    let mut all = Seen::default();
    for seen in kinds {
        all.add(seen);
    }
    let (p50, p99) = (all.percentile(0.5), all.percentile(0.99));
    println!(
        "| all | {total} | {errors} | {:.0} | {p50:.2} ms | {p99:.2} ms |",
        total as f64 / elapsed
    );
    println!(
        "\nservice memory: {idle_peak:.0} MiB after seeding, peak {:.0} MiB resident under load \
         (sampled {:.0} MiB)",
        peak,
        peak_rss.load(Ordering::Relaxed) as f64
    );
    assert_eq!(errors, 0, "every request answered as it should be");
}
