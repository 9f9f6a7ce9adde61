//! Loopback HTTP load: read-by-id and search on the FHIR API, beside an actix-web hello-world
//! measured in the same run as the ceiling of this machine; and read-by-id with SMART
//! authorization (a JWT verified against a JWK Set served in this process) and the audit trail
//! on, against the same binary with both off. The load generator is `wrk`
//! (Debian's package), 64 connections by default.
//!
//! ```sh
//! scripts/bench-http                     # SQLite, then PostgreSQL (throwaway server)
//! cargo bench --bench http               # SQLite only
//! BENCH_DATABASE_URL=postgres://… cargo bench --bench http
//! ```
//!
//! Settings: `BENCH_SECONDS` (per scenario, default 15), `BENCH_CONNECTIONS` (64),
//! `BENCH_THREADS` (wrk threads, 2), `BENCH_WORKERS` (server workers for both servers, 2),
//! `BENCH_PATIENTS` (1000; each gets 10 Observations), `BENCH_ROUNDS` (3: the open and the
//! secured read by id are run in turn this many times, and their medians reported),
//! `BENCH_READ_CACHE` (entries of the read cache; default: the service's default, on for SQLite
//! and off for PostgreSQL), `BENCH_DB_CONNECTIONS` (the database pool's size; default: the
//! service's), `BENCH_SEARCH_CACHE_MIB` (the search cache; default: the service's, 64 MiB; 0
//! measures every search against the database). Each scenario also reports the CPU time the serving process spent
//! per request, which a busy neighbour on a shared machine disturbs less than throughput.
// A load generator is the service's client: its tasks need no request span.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::fmt::Write as _;
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

// The DICOM helpers and the load driver of `common` are not used here.
#[allow(dead_code)]
mod common;

use actix_web::{App, HttpServer, web};
use common::seed::{fresh_postgres_database, seed};
use prognostics::config::Settings;
use prognostics::startup::Application;
use secrecy::SecretString;
use serde_json::{Value, json};

struct Load {
    seconds: u64,
    connections: u32,
    threads: u32,
    workers: usize,
    patients: usize,
    /// Rounds of the pair compared (read by id, open and secured).
    rounds: usize,
}

impl Load {
    fn from_env() -> Self {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        }
        Self {
            seconds: var("BENCH_SECONDS", 15),
            connections: var("BENCH_CONNECTIONS", 64),
            threads: var("BENCH_THREADS", 2),
            workers: var("BENCH_WORKERS", 2),
            patients: var("BENCH_PATIENTS", 1000),
            rounds: var("BENCH_ROUNDS", 3).max(1),
        }
    }
}

/// What wrk measured for one scenario.
#[derive(Debug)]
struct Measured {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU time the process serving spent per request answered (microseconds).
    cpu_us_per_request: f64,
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let load = Load::from_env();
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("wrk is not installed (Debian: apt-get install wrk)");
        std::process::exit(2);
    }
    let scratch = tempfile::tempdir().unwrap();

    let hello_port = spawn_hello_world(load.workers);
    let hello_url = format!("http://127.0.0.1:{hello_port}/");

    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.server.workers = load.workers;
    settings.storage.data_dir = scratch.path().to_path_buf();
    settings.dicom.enabled = false;
    settings.hl7.enabled = false;
    if let Some(n) = std::env::var("BENCH_DB_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.database.max_connections = n;
    }
    settings.database.read_cache_entries = std::env::var("BENCH_READ_CACHE")
        .ok()
        .and_then(|v| v.parse().ok());
    if let Some(mib) = std::env::var("BENCH_SEARCH_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.database.search_cache_mib = mib;
    }
    // The baseline: no authorization, no audit trail.
    settings.audit.enabled = false;
    let backend = match fresh_postgres_database().await {
        Some(url) => {
            settings.database.url = Some(SecretString::from(url));
            "PostgreSQL"
        }
        None => "SQLite",
    };
    let backend = match settings.database.read_cache_entries {
        Some(0) => format!("{backend}, no read cache"),
        Some(_) => format!("{backend}, read cache"),
        None => backend.to_owned(),
    };
    let backend = backend.as_str();
    let app = Application::build(&settings).await.expect("service starts");
    let base = format!("http://127.0.0.1:{}/fhir", app.port());
    tokio::spawn(app.run_until_stopped());

    eprintln!("seeding {} patients on {backend}", load.patients);
    let patients = seed(&base, load.patients, None).await;
    let reads: Vec<String> = patients
        .iter()
        .map(|id| format!("/fhir/Patient/{id}"))
        .collect();
    let searches: Vec<String> = patients
        .iter()
        .map(|id| format!("/fhir/Observation?subject=Patient/{id}&_count=10"))
        .collect();
    // Both answer with what the scenario promises: a Patient, a Bundle of 10 Observations.
    check_answer(&base, &reads[0], "Patient", None).await;
    check_answer(&base, &searches[0], "Bundle", Some(10)).await;

    // The same binary with SMART authorization and the audit trail on, over a database of its
    // own seeded alike (a SQLite database belongs to one process).
    let issuer = spawn_issuer();
    let mut secured = settings.clone();
    secured.storage.data_dir = scratch.path().join("secured");
    if let Some(url) = fresh_postgres_database().await {
        secured.database.url = Some(SecretString::from(url));
    }
    secured.auth.mode = prognostics::config::AuthMode::Smart;
    secured.audit.enabled = true;
    secured.auth.rate_burst = 0;
    secured.fhir.base_url = Some("https://prognostics.bench/fhir".parse().unwrap());
    secured.auth.issuers = vec![prognostics::config::IssuerSettings {
        issuer: issuer.clone(),
        audience: "https://prognostics.bench/fhir".into(),
        jwks_uri: Some(format!("{issuer}/jwks")),
        introspection_endpoint: None,
        introspection_client_id: None,
        introspection_client_secret: None,
    }];
    let secured_app = Application::build(&secured)
        .await
        .expect("secured service starts");
    let secured_base = format!("http://127.0.0.1:{}/fhir", secured_app.port());
    tokio::spawn(secured_app.run_until_stopped());
    let token = access_token(&issuer, "https://prognostics.bench/fhir");
    let secured_reads: Vec<String> = seed(&secured_base, load.patients, Some(&token))
        .await
        .iter()
        .map(|id| format!("/fhir/Patient/{id}"))
        .collect();

    let ceiling = run_wrk(&load, &hello_url, &[], None, scratch.path());
    let search = run_wrk(&load, &base, &searches, None, scratch.path());
    // The pair compared is run in alternation, round after round, so that a slower spell of a
    // shared machine falls on both; each round's ratio is its own pair's.
    let mut reads_measured = Vec::new();
    let mut secured_measured = Vec::new();
    for _ in 0..load.rounds {
        reads_measured.push(run_wrk(&load, &base, &reads, None, scratch.path()));
        secured_measured.push(run_wrk(
            &load,
            &secured_base,
            &secured_reads,
            Some(&token),
            scratch.path(),
        ));
    }
    let ratios: Vec<f64> = reads_measured
        .iter()
        .zip(&secured_measured)
        .map(|(open, secured)| secured.requests_per_sec / open.requests_per_sec)
        .collect();
    let read = median_run(reads_measured);
    let secured_read = median_run(secured_measured);

    let mut table = String::new();
    writeln!(
        table,
        "| scenario | database | requests/s | p50 | p99 | share of ceiling | service CPU per request |"
    )
    .unwrap();
    writeln!(table, "|---|---|---:|---:|---:|---:|---:|").unwrap();
    for (name, db, m) in [
        ("actix-web hello-world (ceiling)", "-", &ceiling),
        ("read by id: GET Patient/{id}", backend, &read),
        (
            "search: GET Observation?subject=…&_count=10",
            backend,
            &search,
        ),
        (
            "read by id, JWT verified and audited",
            backend,
            &secured_read,
        ),
    ] {
        writeln!(
            table,
            "| {name} | {db} | {:.0} | {:.2} ms | {:.2} ms | {:.0}% | {:.1} µs |",
            m.requests_per_sec,
            m.p50_ms,
            m.p99_ms,
            100.0 * m.requests_per_sec / ceiling.requests_per_sec,
            m.cpu_us_per_request,
        )
        .unwrap();
    }
    println!(
        "\n{} s per scenario, {} connections, {} wrk threads, {} server workers, {} CPUs; \
         the two reads by id: the median of {} alternating rounds\n",
        load.seconds,
        load.connections,
        load.threads,
        load.workers,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.rounds,
    );
    println!("{table}");
    let percent = |r: f64| 100.0 * r;
    println!(
        "read by id with JWT verification and audit on / both off: {:.0}% of the throughput \
         (median of {} rounds; each round {}), p99 {:.2} ms against {:.2} ms",
        percent(median(ratios.clone())),
        ratios.len(),
        ratios
            .iter()
            .map(|r| format!("{:.0}%", percent(*r)))
            .collect::<Vec<_>>()
            .join(", "),
        secured_read.p99_ms,
        read.p99_ms
    );
}

/// The middle value (the mean of the middle two of an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Each figure of several runs, its median.
fn median_run(runs: Vec<Measured>) -> Measured {
    let of = |f: fn(&Measured) -> f64| median(runs.iter().map(f).collect());
    Measured {
        requests_per_sec: of(|m| m.requests_per_sec),
        p50_ms: of(|m| m.p50_ms),
        p99_ms: of(|m| m.p99_ms),
        cpu_us_per_request: of(|m| m.cpu_us_per_request),
    }
}

/// CPU seconds this process has used (user and system), from `/proc/self/stat`: the servers
/// measured all run in it, one scenario at a time.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the
    // 13th, in clock ticks.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // Linux counts these in USER_HZ, 100 a second on every architecture (part of its ABI).
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => 0.0,
    }
}

const RSA_KEY: &str = include_str!("../src/auth/testdata/rsa-test-key.pem");

/// An authorization server's JWK Set (the test RSA key), served in this process.
fn spawn_issuer() -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap();
    let mut jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("bench-1".into());
    let jwks = serde_json::to_string(&jsonwebtoken::jwk::JwkSet { keys: vec![jwk] }).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let jwks = jwks.clone();
        App::new().route(
            "/jwks",
            web::get().to(move || {
                let jwks = jwks.clone();
                async move {
                    actix_web::HttpResponse::Ok()
                        .content_type("application/json")
                        .body(jwks)
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

/// A system/*.cruds access token from that issuer, valid for the run.
fn access_token(issuer: &str, audience: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("bench-1".into());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": issuer, "aud": audience, "sub": "bench", "client_id": "bench",
        "exp": now + 3600, "scope": "system/*.cruds"});
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// The ceiling: the smallest actix-web application, with the same worker count.
fn spawn_hello_world(workers: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server =
        HttpServer::new(|| App::new().route("/", web::get().to(|| async { "Hello world!" })))
            .workers(workers)
            .listen(listener)
            .unwrap()
            .run();
    tokio::spawn(server);
    port
}

async fn check_answer(base: &str, path: &str, resource_type: &str, entries: Option<usize>) {
    let url = format!("{}{}", base.trim_end_matches("/fhir"), path);
    let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(body["resourceType"], resource_type, "{path}");
    if let Some(n) = entries {
        assert_eq!(body["entry"].as_array().map(Vec::len), Some(n), "{path}");
    }
}

/// Runs wrk against `base`, each request a random one of `paths` (or `base` itself), with the
/// bearer `token` when given, after a short warm-up; fails on any error or non-2xx answer.
fn run_wrk(
    load: &Load,
    base: &str,
    paths: &[String],
    token: Option<&str>,
    scratch: &std::path::Path,
) -> Measured {
    let origin = base.trim_end_matches("/fhir").trim_end_matches('/');
    let mut script = String::from("wrk.headers[\"Accept\"] = \"application/fhir+json\"\n");
    if let Some(token) = token {
        writeln!(
            script,
            "wrk.headers[\"Authorization\"] = \"Bearer {token}\""
        )
        .unwrap();
    }
    if !paths.is_empty() {
        script.push_str("local paths = {\n");
        for p in paths {
            writeln!(script, "  \"{p}\",").unwrap();
        }
        script.push_str(
            "}\nrequest = function()\n  return wrk.format(\"GET\", paths[math.random(#paths)])\nend\n",
        );
    }
    let script_path = scratch.join("load.lua");
    std::fs::write(&script_path, script).unwrap();
    let run = |seconds: u64| {
        let output = Command::new("wrk")
            .arg(format!("-t{}", load.threads))
            .arg(format!("-c{}", load.connections))
            .arg(format!("-d{seconds}s"))
            .args(["--latency", "--timeout", "5s", "-s"])
            .arg(&script_path)
            .arg(format!("{origin}/"))
            .output()
            .expect("wrk runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    run(2);
    std::thread::sleep(Duration::from_millis(500));
    let cpu_before = process_cpu_seconds();
    let report = run(load.seconds);
    let cpu = process_cpu_seconds() - cpu_before;
    for bad in ["Non-2xx or 3xx responses", "Socket errors"] {
        assert!(!report.contains(bad), "wrk reported errors:\n{report}");
    }
    let mut measured =
        parse_wrk(&report).unwrap_or_else(|| panic!("unreadable wrk report:\n{report}"));
    measured.cpu_us_per_request =
        cpu * 1e6 / (measured.requests_per_sec * load.seconds as f64).max(1.0);
    measured
}

fn parse_wrk(report: &str) -> Option<Measured> {
    let mut requests_per_sec = None;
    let mut p50_ms = None;
    let mut p99_ms = None;
    for line in report.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => requests_per_sec = v.parse().ok(),
            (Some("50%"), Some(v)) => p50_ms = duration_ms(v),
            (Some("99%"), Some(v)) => p99_ms = duration_ms(v),
            _ => {}
        }
    }
    Some(Measured {
        requests_per_sec: requests_per_sec?,
        p50_ms: p50_ms?,
        p99_ms: p99_ms?,
        cpu_us_per_request: 0.0,
    })
}

/// wrk's durations: `812.00us`, `1.23ms`, `2.01s`.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}
