//! The JSON log of the `prognostics` binary: every line logged while a `$risk-assessment` is
//! served, synchronously and asynchronously (its job finishing after the 202), carries the
//! request id the client sent, so that a client quoting it finds the whole story.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::fresh_postgres_database;

/// The service as a separate process, its standard error read line by line.
pub(crate) struct Service {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    pub(crate) address: String,
    /// The data folder, shared with the replicas started from this service.
    data: Arc<tempfile::TempDir>,
    /// The PostgreSQL database, when the tests run on one.
    pub(crate) database: Option<String>,
    /// How it was started, for a restart.
    launch: Launch,
}

/// What a start of the service is given.
struct Launch {
    dir: std::path::PathBuf,
    env: Vec<(String, String)>,
    all_doors: bool,
    shell: Option<String>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    async fn start() -> Service {
        Service::start_in(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
            &[("PROGNOSTICS_INFERENCE__ENABLED", "false")],
        )
        .await
    }

    /// The service started in `dir` with the environment `env` added (HTTP only).
    pub(crate) async fn start_in(dir: &std::path::Path, env: &[(&str, &str)]) -> Service {
        Service::start_with(dir, env, false).await
    }

    /// The service started in `dir` with `env`; with `all_doors`, the DICOM and MLLP listeners
    /// too, on free ports (see [`Service::port_of`]).
    pub(crate) async fn start_with(
        dir: &std::path::Path,
        env: &[(&str, &str)],
        all_doors: bool,
    ) -> Service {
        Service::start_limited(dir, env, all_doors, None).await
    }

    /// [`Service::start_with`], started through `launch` (a shell line run with the binary as
    /// `$0` and its arguments as `$@`, the data folder in `$TEST_SERVICE_DATA`): to limit
    /// its file descriptors, or to give it a small disk of its own.
    pub(crate) async fn start_limited(
        dir: &std::path::Path,
        env: &[(&str, &str)],
        all_doors: bool,
        launch: Option<&str>,
    ) -> Service {
        let data = tempfile::tempdir().unwrap();
        let database = fresh_postgres_database().await;
        let launch = Launch {
            dir: dir.to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            all_doors,
            shell: launch.map(str::to_owned),
        };
        let (child, lines, address) = spawn(&launch, data.path(), database.as_deref()).await;
        Service {
            child,
            lines,
            address,
            data: Arc::new(data),
            database,
            launch,
        }
    }

    /// Another process started as this one was, on the same database and data folder: a
    /// replica (on PostgreSQL; the embedded database admits one process).
    pub(crate) async fn replica(&self) -> Service {
        let (child, lines, address) =
            spawn(&self.launch, self.data.path(), self.database.as_deref()).await;
        Service {
            child,
            lines,
            address,
            data: Arc::clone(&self.data),
            database: self.database.clone(),
            launch: Launch {
                dir: self.launch.dir.clone(),
                env: self.launch.env.clone(),
                all_doors: self.launch.all_doors,
                shell: self.launch.shell.clone(),
            },
        }
    }

    /// Kills the service as `kill -9` does (unless it is dead already) and starts it again on
    /// the same data and database (on new ports).
    pub(crate) async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, lines, address) =
            spawn(&self.launch, self.data.path(), self.database.as_deref()).await;
        self.child = child;
        self.lines = lines;
        self.address = address;
    }

    /// The database URL the service uses.
    pub(crate) fn database_url(&self) -> String {
        self.database.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rw",
                self.data.path().join("prognostics.db").display()
            )
        })
    }

    /// Asks the service to stop, as an orchestrator does (SIGTERM).
    pub(crate) fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// The exit status once the process has ended, waiting up to `limit`.
    pub(crate) async fn exited_within(
        &mut self,
        limit: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Kills the service as `kill -9` does: no shutdown, nothing flushed.
    pub(crate) fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Runs another command of the binary on the same data (and database).
    pub(crate) fn command(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_prognostics"));
        command.arg("--data-dir").arg(self.data.path());
        if let Some(url) = &self.database {
            command.arg("--database").arg(url);
        }
        command.args(args).env("RUST_LOG", "warn").output().unwrap()
    }

    /// The port a listener logged (`message` as it says it listens).
    pub(crate) fn port_of(&self, message: &str) -> u16 {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l["message"] == message)
            .and_then(|l| l["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("no line `{message}` with a port"))
    }

    pub(crate) fn logged(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Lines logged since `from`.
    pub(crate) fn since(&self, from: usize) -> Vec<Value> {
        self.lines.lock().unwrap()[from..].to_vec()
    }
}

/// Starts the binary as `launch` says over `data` (and `database`) and waits for it to say
/// where it listens.
async fn spawn(
    launch: &Launch,
    data: &std::path::Path,
    database: Option<&str>,
) -> (Child, Arc<Mutex<Vec<Value>>>, String) {
    let binary = env!("CARGO_BIN_EXE_prognostics");
    let mut command = match &launch.shell {
        Some(line) => {
            let mut shell = Command::new("sh");
            shell
                .args(["-c", line, binary])
                .env("TEST_SERVICE_DATA", data);
            shell
        }
        None => Command::new(binary),
    };
    command
        .current_dir(&launch.dir)
        .env("RUST_LOG", "info,prognostics=debug")
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .arg("--log-format")
        .arg("json")
        .arg("--data-dir")
        .arg(data);
    if let Some(url) = database {
        command.arg("--database").arg(url);
    }
    command.args(["serve", "--listen", "127.0.0.1:0"]);
    if launch.all_doors {
        command.args([
            "--dicom-listen",
            "127.0.0.1:0",
            "--mllp-listen",
            "127.0.0.1:0",
        ]);
    } else {
        command.args(["--no-dicom", "--no-mllp"]);
    }
    let mut child = command
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lines: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let value = serde_json::from_str(&line)
                .unwrap_or_else(|_| panic!("a log line that is not JSON: {line}"));
            sink.lock().unwrap().push(value);
        }
    });
    let mut port = None;
    for _ in 0..600 {
        port = lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l["message"] == "service listening")
            .and_then(|l| l["port"].as_u64());
        if port.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let port = port.expect("the service says where it listens");
    (child, lines, format!("http://127.0.0.1:{port}"))
}

/// The request ids of a line's spans.
fn request_ids(line: &Value) -> Vec<String> {
    line["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["request_id"].as_str().map(str::to_owned))
        .collect()
}

/// Waits for the service to log nothing more for a moment (its start-up work done, or an
/// assessment's last line written).
async fn settle(service: &Service) {
    let mut seen = service.logged();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = service.logged();
        if now == seen {
            return;
        }
        seen = now;
    }
}

#[tokio::test]
async fn every_line_of_an_assessment_carries_its_request_id() {
    let service = Service::start().await;
    let client = reqwest::Client::new();
    let fhir = |path: &str| format!("{}/fhir/{path}", service.address);
    let patient: Value = client
        .post(fhir("Patient"))
        .header("Content-Type", "application/fhir+json")
        .json(&json!({"resourceType": "Patient", "gender": "female", "birthDate": "1960-05-01"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = patient["id"].as_str().unwrap();
    // Diagnosed today: in the default model's population.
    let diagnosis = client
        .post(fhir("Condition"))
        .header("Content-Type", "application/fhir+json")
        .json(&json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{id}")},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C50.911"}]},
            "onsetDateTime": chrono::Utc::now().format("%Y-%m-%d").to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(diagnosis.status(), 201);
    settle(&service).await;

    // Synchronous: answered with the Bundle.
    let from = service.logged();
    let response = client
        .post(fhir(&format!("Patient/{id}/$risk-assessment")))
        .header("Content-Type", "application/fhir+json")
        .header("X-Request-Id", "sync-assessment-1")
        .json(&json!({"resourceType": "Parameters"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    settle(&service).await;
    let sync_lines = service.since(from);

    // Asynchronous: 202, then the job runs on and files after the request was answered.
    let from = service.logged();
    let response = client
        .post(fhir(&format!("Patient/{id}/$risk-assessment")))
        .header("Content-Type", "application/fhir+json")
        .header("Prefer", "respond-async")
        .header("X-Request-Id", "async-assessment-1")
        .json(&json!({"resourceType": "Parameters", "parameter": [
            {"name": "horizon", "valueString": "3y"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let status_url = response.headers()["content-location"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut done = false;
    for poll in 0..200 {
        let polled = client
            .get(&status_url)
            .header("X-Request-Id", format!("poll-{poll}"))
            .send()
            .await
            .unwrap();
        if polled.status() == 200 {
            done = true;
            break;
        }
        assert_eq!(polled.status(), 202);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "the asynchronous assessment finished");
    settle(&service).await;
    let async_lines = service.since(from);

    for (id, lines) in [
        ("sync-assessment-1", &sync_lines),
        ("async-assessment-1", &async_lines),
    ] {
        let filed = lines
            .iter()
            .filter(|l| l["message"] == "risk assessment filed")
            .collect::<Vec<_>>();
        assert_eq!(filed.len(), 1, "{id}: one assessment filed: {lines:#?}");
        for line in lines {
            let ids = request_ids(line);
            let polling = ids.iter().any(|i| i.starts_with("poll-"));
            assert!(
                ids.iter().any(|i| i == id) || (polling && id.starts_with("async")),
                "{id}: a line without the request id: {line}"
            );
        }
        assert!(
            request_ids(filed[0]).iter().any(|i| i == id),
            "{id}: the assessment is filed under its request id"
        );
    }
}
