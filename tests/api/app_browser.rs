//! The SMART app in a real browser through a real EHR launch: the FHIR test server (Medplum's
//! router) is the EHR, holding the patient's record and publishing `oidc-provider` as its
//! authorization server; headless Chromium (driven by tests/browser/app.mjs) opens the app's
//! launch URL as the EHR would, signs in through the provider with PKCE, runs an assessment
//! (the service pulls the record from the EHR with the app's token's grant), reads what a
//! clinician sees, checks the page with axe-core and signs the report by keyboard. The
//! screenshots it takes are the README's (`UPDATE_SCREENSHOTS=1` writes them there).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use prognostics::config::AuthMode;
use serde_json::{Value, json};

use crate::auth_server::start_provider;
use crate::authorization::{client_with, trusting};
use crate::ehr::{node, start_node_server};
use crate::helpers::spawn_app_with;
use crate::issuer::TestIssuer;

const PATIENT: &str = "app-patient-1";
const USER: &str = "Practitioner/onc-7";
const CLIENT_ID: &str = "prognostics-risk-view";

/// What a browser test needs: Chromium and the test's npm packages.
pub(crate) fn browser_ready(root: &Path) -> bool {
    let ready = Path::new(&chromium()).exists()
        && root
            .join("tests/browser/node_modules/puppeteer-core")
            .is_dir()
        && root.join("tests/browser/node_modules/axe-core").is_dir()
        && node().exists();
    if !ready {
        assert!(
            std::env::var_os("TEST_REQUIRE_PEERS").is_none(),
            "Chromium or the browser test's packages are missing: run scripts/install-test-deps"
        );
        eprintln!("skipping: Chromium or the browser test's packages are not installed");
    }
    ready
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The patient's record in the EHR: diagnosed today, pathology partly on record (so that the
/// app has missing inputs to show).
fn record(dir: &Path) {
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let subject = json!({"reference": format!("Patient/{PATIENT}")});
    let coded = |system: &str, code: &str, display: &str| json!({"coding": [{"system": system, "code": code, "display": display}]});
    let snomed = "http://snomed.info/sct";
    let loinc = "http://loinc.org";
    let resources = vec![
        json!({"resourceType": "Patient", "id": PATIENT, "gender": "female", "birthDate": "1961-04-12",
            "name": [{"family": "Lindqvist", "given": ["Maja"]}],
            "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                "system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-40417"}]}),
        json!({"resourceType": "Condition", "id": "app-dx-1", "subject": subject,
            "code": coded(snomed, "372064008", "Malignant neoplasm of female breast"),
            "onsetDateTime": today}),
        json!({"resourceType": "Observation", "id": "app-meno-1", "status": "final", "subject": subject,
            "code": coded(snomed, "161712005", "Menopausal status"), "effectiveDateTime": today,
            "valueCodeableConcept": coded(snomed, "76498008", "Postmenopausal state")}),
        json!({"resourceType": "Observation", "id": "app-grade-1", "status": "final", "subject": subject,
            "code": coded(loinc, "33732-9", "Histology grade"), "effectiveDateTime": today,
            "valueCodeableConcept": coded(snomed, "61026006", "Grade III")}),
        json!({"resourceType": "Observation", "id": "app-nodes-1", "status": "final", "subject": subject,
            "code": coded(loinc, "21893-3", "Regional lymph nodes positive"), "effectiveDateTime": today,
            "valueInteger": 5}),
        json!({"resourceType": "Observation", "id": "app-size-1", "status": "final", "subject": subject,
            "code": coded(loinc, "21889-1", "Size Tumor"), "effectiveDateTime": today,
            "valueQuantity": {"value": 32, "unit": "mm", "system": "http://unitsofmeasure.org", "code": "mm"}}),
        json!({"resourceType": "MedicationStatement", "id": "app-tam-1", "status": "active", "subject": subject,
            "effectiveDateTime": today,
            "medicationCodeableConcept": coded("http://www.nlm.nih.gov/research/umls/rxnorm", "10324", "tamoxifen")}),
    ];
    for resource in resources {
        let id = resource["id"].as_str().unwrap();
        std::fs::write(dir.join(format!("{id}.json")), resource.to_string()).unwrap();
    }
}

/// The EHR: the FHIR test server over `data`, naming `authorization_server` in its SMART
/// configuration.
fn start_ehr(data: &Path, authorization_server: &str) -> (std::process::Child, String) {
    let (child, port) = start_node_server(
        "tests/fhir-server/server.mjs",
        &[
            "--authorization-server".as_ref(),
            authorization_server.as_ref(),
            data.as_os_str(),
        ],
    );
    (child, format!("http://127.0.0.1:{port}/fhir/R4"))
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_clinician_launches_the_app_from_the_ehr_sees_the_risk_and_signs_it() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if !browser_ready(&root) {
        return;
    }
    let port = free_port();
    let service = format!("http://127.0.0.1:{port}");
    let Some(provider) = start_provider(&json!({
        "audience": format!("{service}/fhir"),
        "backend": {"client_id": "unused-backend", "jwks": {"keys": []}, "scope": "system/*.rs"},
        "app": {
            "client_id": CLIENT_ID,
            "redirect_uri": format!("{service}/app/"),
            "scope": "patient/*.rs patient/RiskAssessment.c patient/DiagnosticReport.u",
            "user": "onc-7",
            "fhirUser": USER,
            "patient": PATIENT,
        },
    })) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    record(data.path());
    let issuer = provider.issuer.clone();
    let (ehr, ehr_base) = start_ehr(data.path(), &issuer);
    let _ehr = Killed(ehr);

    // The hospital's own auditor reads the trail with a token of another issuer.
    let auditors = TestIssuer::with_rsa_key().await;
    let auditors_base = auditors.base.clone();
    let ehr_for_service = ehr_base.clone();
    let audience = format!("{service}/fhir");
    let mut app = spawn_app_with(move |s| {
        s.server.listen = format!("127.0.0.1:{port}").parse().unwrap();
        s.fhir.base_url = Some(format!("{service}/fhir").parse().unwrap());
        s.auth.mode = AuthMode::Smart;
        let mut trusted = trusting(issuer);
        trusted.audience = format!("{service}/fhir");
        let mut auditor = trusting(auditors_base);
        auditor.audience = trusted.audience.clone();
        s.auth.issuers = vec![trusted, auditor];
        s.ehr.base_url = Some(ehr_for_service);
        s.ehr.bearer_token = Some("ehr-service-token".to_owned().into());
        s.app.client_id = CLIENT_ID.into();
    })
    .await;

    // The EHR opens the app with its own address and a launch handle.
    let launch = format!(
        "{}/app/launch?iss={}&launch=ehr-launch-4711",
        app.address,
        url::form_urlencoded::byte_serialize(ehr_base.as_bytes()).collect::<String>()
    );
    let shots = tempfile::tempdir().unwrap();
    let seen = browse(&root, &launch, shots.path(), "sign").await;

    // Signed in through the EHR's launch, and back at the app with the code spent.
    assert_eq!(seen["landedOn"], "/app/", "{seen:#}");
    assert_eq!(seen["user"], format!("Signed in as {USER}"));
    assert_eq!(seen["patient"], "Maja Lindqvist", "{seen:#}");
    assert!(
        seen["patientDetails"]
            .as_str()
            .unwrap()
            .contains("MRN-40417")
    );
    assert!(
        seen["aiNotice"]
            .as_str()
            .unwrap()
            .contains("AI-generated and preliminary")
    );
    // The risk in words, its plot, and why.
    let risk = seen["risk"].as_str().unwrap();
    assert!(
        risk.contains("% risk of recurrence or death within 5 years"),
        "{risk}"
    );
    assert!(seen["curveDrawn"].as_bool().unwrap());
    assert_eq!(seen["horizonMarkers"], 3);
    assert!(seen["featureRows"].as_u64().unwrap() >= 3);
    assert_eq!(seen["featureBars"], seen["featureRows"]);
    assert!(seen["sourceLinks"].as_u64().unwrap() >= 1);
    // The record was read from the EHR: a source says where it lives there.
    let where_ = seen["sourceWhere"].as_str().unwrap();
    assert!(
        where_.starts_with("Read from the EHR") && where_.contains(&ehr_base),
        "{seen:#}"
    );
    assert!(!seen["sourceOpened"].as_str().unwrap().is_empty());
    // The receptor results are not in the EHR: named, with the test that gives them.
    let missing: Vec<&str> = seen["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(
        missing
            .iter()
            .any(|m| m.starts_with("progrec") && m.contains("order")),
        "{missing:?}"
    );
    assert!(
        seen["model"][0].as_str().unwrap().starts_with("gbsg2"),
        "{seen:#}"
    );
    assert!(seen["validationRows"].as_u64().unwrap() >= 4);
    assert_eq!(seen["historyRows"], 1);
    assert_eq!(seen["trendTitle"], "Risk within 5 years over time");
    // Usable in a 1024 × 768 frame, by keyboard, without serious accessibility faults, and
    // nothing the CSP had to block.
    assert_eq!(seen["fitsWidth"], true, "{seen:#}");
    let serious: Vec<&Value> = seen["axeViolations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(serious.is_empty(), "{serious:#?}");
    assert_eq!(seen["cspViolations"], json!([]), "{seen:#}");
    assert_eq!(seen["consoleErrors"], json!([]), "{seen:#}");
    // The one request refused: the banner's Patient, before the first assessment copied it
    // here from the EHR.
    assert_eq!(
        seen["failedRequests"],
        json!([format!("404 /fhir/Patient/{PATIENT}")]),
        "{seen:#}"
    );
    assert_eq!(seen["firstTab"], "Skip to the risk");
    assert_eq!(seen["signFocused"], true, "{seen:#}");
    // Signed: final, by the clinician who signed in.
    assert!(
        seen["afterSign"].as_str().unwrap().starts_with("Signed"),
        "{seen:#}"
    );
    assert_eq!(
        seen["reportStateAfterSign"],
        format!("Signed by {USER}: final.")
    );
    assert_eq!(seen["signDisabledAfter"], true);

    // What the service filed and audited.
    app.client = client_with(&auditors.token(&auditors.claims(
        &audience,
        "auditor",
        "system/AuditEvent.rs",
        None,
    )));
    let audit = app.audit_events("_count=500").await;
    let subtypes: Vec<&str> = audit
        .iter()
        .filter_map(|e| e["subtype"][0]["code"].as_str())
        .collect();
    for expected in [
        "app-launch",
        "app-token",
        "risk-assessment",
        "explanation",
        "sign-off",
    ] {
        assert!(
            subtypes.contains(&expected),
            "{expected} not audited: {subtypes:?}"
        );
    }
    let signed = audit
        .iter()
        .find(|e| e["subtype"][0]["code"] == "sign-off")
        .unwrap();
    assert_eq!(signed["outcome"], "0");
    assert!(signed.to_string().contains(USER));

    // A standalone launch (from the app's own address, no EHR context): the EHR's
    // authorization server picks the patient, and the app shows the signed report.
    let standalone = browse(
        &root,
        &format!("{}/app/launch", app.address),
        shots.path(),
        "view",
    )
    .await;
    assert_eq!(standalone["landedOn"], "/app/", "{standalone:#}");
    assert_eq!(standalone["patient"], "Maja Lindqvist");
    assert_eq!(
        standalone["reportState"],
        format!("Signed by {USER}: final.")
    );
    assert_eq!(standalone["risk"], seen["risk"]);

    // The screenshots are PNGs; UPDATE_SCREENSHOTS=1 keeps them for the README.
    for name in ["risk-view.png", "risk-view-full.png", "signed.png"] {
        let bytes = std::fs::read(shots.path().join(name)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{name}");
        if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
            std::fs::write(root.join("tests/browser/screenshots").join(name), bytes).unwrap();
        }
    }
    drop(provider);
}

/// Runs the browser script on `launch` (`sign` or `view`); what it saw.
async fn browse(root: &Path, launch: &str, shots: &Path, mode: &str) -> Value {
    let shots = shots.to_string_lossy().into_owned();
    run_script(root, "app.mjs", &[launch, &shots, mode]).await
}

/// Runs `tests/browser/{script}` with `args` in Chromium; the JSON it printed, checked for
/// success.
pub(crate) async fn run_script(root: &Path, script: &str, args: &[&str]) -> Value {
    let script = root.join("tests/browser").join(script);
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(node())
            .arg(script)
            .args(&args)
            .env("CHROMIUM", chromium())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "the browser script printed no result: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        output.status.success() && seen.get("failure").is_none(),
        "{seen:#}"
    );
    seen
}
