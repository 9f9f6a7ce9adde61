//! `$risk-assessment` end to end with real peers: the patient is on the EHR (the Medplum-based
//! FHIR test server holding the mCODE examples), her CT series arrives by dcmtk's `storescu`
//! and her LDH result by the `hl7` package's `mllp_send` (both filed here under her medical
//! record number), and a model that takes her age, LDH and the study's image embedding assesses
//! her. The result is searched and read back, and every resource passes both validators and
//! the service's profiles. The model and image encoder are tiny random ones built here: what is
//! checked is every step, not the numbers.

use std::path::{Path, PathBuf};

use prognostics::domain::{Horizon, TimeUnit};
use prognostics::features::InputSpec;
use prognostics::fusion::TrainSettings;
use prognostics::training::{ColumnRoles, TrainOptions, train};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_valid_fhir, pydicom_path, spawn_app_with};

pub(crate) const MRN_SYSTEM: &str = "http://hospital.example.org";
const PATIENT: &str = "cancer-patient-jenny-m";

fn years(n: f64) -> Horizon {
    Horizon::new(n, TimeUnit::Years).unwrap()
}

/// Uniform numbers in [0, 1) from a fixed seed (xorshift): random cohorts the same each run.
pub(crate) fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A tabular column of a random cohort: its name, and its value from a uniform draw.
pub(crate) type Column<'a> = (&'a str, fn(f64) -> f64);

/// A random cohort of `rows` patients: age, the `tabular` columns each drawn by its function,
/// follow-up with a hazard of age (and whatever `hazard` adds from the tabular values), and an
/// embedding `{prefix}_0 …` of `width` small random values.
pub(crate) struct RandomCohort<'a> {
    pub seed: u64,
    pub rows: usize,
    pub tabular: &'a [Column<'a>],
    pub hazard: fn(f64, &[f64]) -> f64,
    pub embedding: (&'a str, usize),
}

impl RandomCohort<'_> {
    fn csv(&self) -> String {
        let mut uniform = uniform(self.seed);
        let mut csv = String::from("age");
        for (name, _) in self.tabular {
            csv += &format!(",{name}");
        }
        csv += ",time,event";
        for i in 0..self.embedding.1 {
            csv += &format!(",{}_{i}", self.embedding.0);
        }
        csv.push('\n');
        for _ in 0..self.rows {
            let age = 40.0 + 40.0 * uniform();
            let values: Vec<f64> = self
                .tabular
                .iter()
                .map(|(_, draw)| draw(uniform()))
                .collect();
            let hazard = (self.hazard)(age, &values);
            let time = (-(1.0 - uniform()).ln() / (0.0005 * hazard.exp())).min(3000.0) + 1.0;
            csv += &format!("{age:.1}");
            for v in &values {
                csv += &format!(",{v:.0}");
            }
            csv += &format!(",{time:.0},{}", u8::from(time < 3000.0));
            for _ in 0..self.embedding.1 {
                csv += &format!(",{:.4}", uniform() - 0.5);
            }
            csv.push('\n');
        }
        csv
    }

    /// A model trained on it, named `name`, reading its inputs by `spec` (TOML), into
    /// `dir/{name}`.
    pub(crate) fn train(&self, dir: &Path, name: &str, spec: &str, members: usize) -> PathBuf {
        let cohort = dir.join(format!("{name}.csv"));
        std::fs::write(&cohort, self.csv()).unwrap();
        let spec: InputSpec = toml::from_str(spec).unwrap();
        let out = dir.join(name);
        let options = TrainOptions {
            cohort,
            roles: ColumnRoles {
                time: "time".into(),
                event: "event".into(),
                embedding_components: 4,
                ..ColumnRoles::default()
            },
            out: out.clone(),
            name: name.into(),
            settings: TrainSettings {
                seed: 1,
                members,
                max_epochs: 30,
                patience: 10,
                ..TrainSettings::default()
            },
            test_fraction: 0.2,
            horizons: vec![years(1.0), years(3.0)],
            time_unit: TimeUnit::Days,
            triage_recall: 0.9,
            subgroups: vec![],
            inputs: Some(spec),
        };
        train(&options, &mut |_| {}).unwrap();
        out
    }
}

/// A small cohort of random patients (age, LDH, a 64-wide image embedding), and a model
/// trained on it whose input spec reads them from FHIR: age from the birth date, LDH by LOINC
/// 2532-0, the image embedding of encoder `tiny`.
pub(crate) fn train_model(dir: &Path) -> PathBuf {
    let cohort = RandomCohort {
        seed: 0x2545_f491_4f6c_dd1d,
        rows: 120,
        tabular: &[("ldh", |u| 150.0 + 200.0 * u)],
        hazard: |age, values| 0.03 * (age - 60.0) + 0.01 * (values[0] - 250.0),
        embedding: ("imaging", 64),
    };
    let model = cohort.train(
        dir,
        "ldh-imaging",
        r#"
        [clinical]
        age = true
        [[labs]]
        name = "ldh"
        loinc = ["2532-0"]
        unit = "U/L"
        [imaging]
        encoder = "tiny"
        dimension = 64
        [outcome]
        code = "death"
        display = "Death"
        "#,
        2,
    );
    let out = dir.join("model");
    std::fs::rename(&model, &out).unwrap();
    out
}

/// Three instances of one CT series for her MRN (CT_small.dcm, each with a new SOP Instance
/// UID, by dcmtk's dcmodify).
pub(crate) fn her_series(dir: &Path, ct: &Path) -> Vec<String> {
    (0..3)
        .map(|i| {
            let file = dir.join(format!("ct{i}.dcm"));
            std::fs::copy(ct, &file).unwrap();
            let args = [
                "-nb".to_owned(),
                "-gin".to_owned(),
                "-m".to_owned(),
                "(0010,0020)=MRN1234".to_owned(),
                file.display().to_string(),
            ];
            assert!(crate::dimse::run("dcmodify", &args).status.success());
            file.display().to_string()
        })
        .collect()
}

/// Her CT image (pydicom's CT_small.dcm) when dcmtk is there to send it; `None` skips.
pub(crate) fn her_ct() -> Option<PathBuf> {
    if !crate::dimse::dcmtk_available() {
        return None;
    }
    pydicom_path("CT_small.dcm")
}

/// The image encoder `tiny` (random weights) and a model trained on [`train_model`]'s cohort
/// that reads its embedding, under `dir`: (encoders folder, model bundle).
pub(crate) fn imaging_models(dir: &Path) -> (PathBuf, PathBuf) {
    let models = dir.join("encoders");
    prognostics::encoders::write_random_model(&models, "tiny", "efficientnet-lite", 1).unwrap();
    (models, train_model(dir))
}

/// Sends [`her_series`] to the service's DICOM port by storescu.
pub(crate) async fn store_her_series(app: &TestApp, dir: &Path, ct: &Path) {
    let mut args: Vec<String> = ["-aec", "PROGNOSTICS", "127.0.0.1"]
        .map(String::from)
        .to_vec();
    args.push(app.dicom_port.unwrap().to_string());
    args.extend(her_series(dir, ct));
    let sent = tokio::task::spawn_blocking(move || crate::dimse::run("storescu", &args))
        .await
        .unwrap();
    assert!(sent.status.success(), "storescu");
}

#[tokio::test]
async fn an_ehr_patient_with_a_study_and_a_lab_feed_is_assessed_end_to_end() {
    let Some((server, _client)) = crate::ehr::fhir_server_and_client().await else {
        return;
    };
    let Some(mllp_send) = crate::hl7::mllp_send() else {
        return;
    };
    let Some(ct) = her_ct() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (models, bundle) = imaging_models(dir.path());
    let ehr = server.base_url.clone();
    let app = spawn_app_with(|s| {
        s.ehr.base_url = Some(ehr);
        s.inference.enabled = true;
        s.inference.models_dir = models.clone();
        s.risk.model = bundle;
        s.dicom.patient_id_system = Some(MRN_SYSTEM.into());
        s.hl7
            .identifier_systems
            .insert("HOSP".into(), MRN_SYSTEM.into());
    })
    .await;

    // Her CT series, by storescu.
    store_her_series(&app, dir.path(), &ct).await;

    // Her LDH of this week (the model looks a year back), by mllp_send.
    let drawn = (chrono::Utc::now() - chrono::Duration::days(3)).format("%Y%m%d");
    let oru = format!(
        "MSH|^~\\&|LAB|HOSP|PROGNOSTICS|ONC|{drawn}083000||ORU^R01^ORU_R01|MSG0900|P|2.5.1\n\
         PID|1||MRN1234^^^HOSP^MR||MCODE^JENNY||19650101|F\n\
         OBR|1||LAB900|2532-0^LDH^LN|||{drawn}070000\n\
         OBX|1|NM|2532-0^Lactate dehydrogenase^LN||310|U/L|140-280|H|||F\n"
    );
    let file = dir.path().join("oru.hl7");
    std::fs::write(&file, oru).unwrap();
    let acked = crate::hl7::send_file(&mllp_send, app.mllp_port.unwrap(), file).await;
    let ack = String::from_utf8_lossy(&acked.stdout);
    assert!(ack.contains("MSA|AA|MSG0900"), "{ack}");

    // The ImagingStudy is written once the series is in.
    let studies = app.search_until_total("ImagingStudy", 1).await;
    assert_eq!(studies["total"], 1, "{studies}");
    let study_id = studies["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = app
        .post(
            &format!("Patient/{PATIENT}/$risk-assessment"),
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    let resources: Vec<&Value> = result["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let of = |t: &str| {
        resources
            .iter()
            .copied()
            .filter(|r| r["resourceType"] == t)
            .collect::<Vec<_>>()
    };
    assert!(
        of("OperationOutcome").is_empty(),
        "nothing missing: {result}"
    );
    let report = of("DiagnosticReport")[0];
    assert_eq!(
        report["imagingStudy"][0]["reference"],
        format!("ImagingStudy/{study_id}")
    );
    let risk = of("RiskAssessment")[0];
    let basis: Vec<&str> = risk["basis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reference"].as_str().unwrap())
        .collect();
    assert!(
        basis[0].starts_with(&format!("Patient/{PATIENT}/")),
        "{basis:?}"
    );
    assert!(
        basis.iter().any(|b| b.starts_with("Observation/")),
        "the LDH filed from HL7: {basis:?}"
    );
    assert!(
        basis
            .iter()
            .any(|b| b.starts_with(&format!("ImagingStudy/{study_id}/"))),
        "{basis:?}"
    );
    let rationale = risk["prediction"][0]["rationale"].as_str().unwrap();
    assert!(rationale.contains("imaging"), "{rationale}");
    assert_eq!(
        risk["prediction"][0]["outcome"]["coding"][0]["code"],
        "death"
    );
    assert_valid_fhir("the end-to-end assessment", std::slice::from_ref(&result));

    // Found by search and read back as filed.
    let reports = app
        .search(&format!("DiagnosticReport?subject=Patient/{PATIENT}"))
        .await;
    assert_eq!(reports["total"], 1);
    let risks = app
        .search(&format!("RiskAssessment?subject=Patient/{PATIENT}"))
        .await;
    assert_eq!(risks["total"], 1);
    let read: Value = app
        .get(&format!(
            "DiagnosticReport/{}",
            report["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["result"], report["result"]);
    let provenance: Value = app
        .search(&format!(
            "Provenance?_id={}",
            of("Provenance")[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(provenance["total"], 1);
    let mut filed = vec![read];
    filed.extend(
        [reports, risks, provenance]
            .iter()
            .flat_map(|b| b["entry"].as_array().unwrap().clone())
            .map(|e| e["resource"].clone()),
    );
    assert_valid_fhir("the filed resources read back", &filed);

    // What the feeds filed (the DICOM study's Patient and ImagingStudy, the HL7 result), the
    // search Bundles and the CapabilityStatement pass the validators too.
    let mut emitted = Vec::new();
    for query in ["Patient", "ImagingStudy", "Observation?code=2532-0"] {
        let bundle = app.search(query).await;
        emitted.extend(
            bundle["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["resource"].clone()),
        );
        emitted.push(bundle);
    }
    emitted.push(app.get("metadata").await.json().await.unwrap());
    assert_valid_fhir(
        "what the feeds filed, searches and the CapabilityStatement",
        &emitted,
    );
}
