//! The default model as the service ships it (models/risk/gbsg2-recurrence, trained by
//! scripts/train-default-model): it loads, its input spec fills every feature it takes, a
//! patient given as FHIR resources gets exactly the prediction the same values get as a cohort
//! row (what the service builds is what training saw), a patient with part of the record still
//! gets one with the missing modality named, and the documented command reproduces it.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use prognostics::cohort::read_cohort;
use prognostics::features::{Embeddings, Modality, PatientContext, build_features};
use prognostics::fusion::{Inputs, Model};
use prognostics::training::dataset::cohort_inputs;
use prognostics::training::inputs::recode_for_spec;
use serde_json::{Value, json};

use crate::data::gbsg2_path;

fn bundle_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/risk/gbsg2-recurrence")
}

fn coded(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";
const UCUM: &str = "http://unitsofmeasure.org";

/// A 70-year-old postmenopausal patient with a 21 mm grade II tumour, 3 positive nodes,
/// PgR 48 and ER 66 fmol/mg, who did not take tamoxifen, as an EHR would hold her.
fn patient_resources(with_pathology: bool) -> (Value, Vec<Value>) {
    let patient = json!({"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1954-01-01"});
    let subject = json!({"reference": "Patient/p1"});
    let observation = |id: &str, code: Value, value: (&str, Value)| {
        let mut o = json!({"resourceType": "Observation", "id": id, "status": "final",
            "code": code, "subject": subject, "effectiveDateTime": "2023-11-20"});
        o[value.0] = value.1;
        o
    };
    let mut resources = vec![
        observation(
            "menopause",
            coded(SNOMED, "161712005"),
            ("valueCodeableConcept", coded(SNOMED, "76498008")),
        ),
        observation(
            "grade",
            coded(LOINC, "33732-9"),
            ("valueCodeableConcept", coded(SNOMED, "1663004")),
        ),
        json!({"resourceType": "MedicationStatement", "id": "tamoxifen", "status": "not-taken",
            "subject": subject, "effectiveDateTime": "2023-12-01",
            "medicationCodeableConcept": coded("http://www.nlm.nih.gov/research/umls/rxnorm", "10324")}),
    ];
    if with_pathology {
        // mCODE's TumorSize: the size on its major-axis component, in cm.
        let mut size = observation(
            "size",
            coded(LOINC, "21889-1"),
            (
                "component",
                json!([{
            "code": coded(LOINC, "33728-7"),
            "valueQuantity": {"value": 2.1, "unit": "cm", "system": UCUM, "code": "cm"}}]),
            ),
        );
        size.as_object_mut().unwrap().remove("value");
        resources.push(size);
        resources.push(observation(
            "nodes",
            coded(LOINC, "21893-3"),
            ("valueInteger", json!(3)),
        ));
        resources.push(observation(
            "pgr",
            coded(LOINC, "31207-4"),
            (
                "valueQuantity",
                json!({"value": 48, "system": UCUM, "code": "fmol/mg"}),
            ),
        ));
        // In pmol/g: the same concentration as 66 fmol/mg.
        resources.push(observation(
            "er",
            coded(LOINC, "14130-9"),
            (
                "valueQuantity",
                json!({"value": 66, "system": UCUM, "code": "pmol/g"}),
            ),
        ));
    }
    (patient, resources)
}

fn as_of() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .unwrap()
        .to_utc()
}

fn fhir_inputs(model: &Model, with_pathology: bool) -> (Inputs, prognostics::features::FeatureSet) {
    let (patient, resources) = patient_resources(with_pathology);
    let context = PatientContext::from_resources(&patient, &resources);
    assert!(context.skipped.is_empty(), "{:?}", context.skipped);
    let spec = model
        .manifest
        .inputs
        .as_ref()
        .expect("the default model has an input spec");
    let features = build_features(spec, &context, &Embeddings::default(), as_of());
    let inputs =
        Inputs::from_feature_sets(&model.manifest.layout, std::slice::from_ref(&features)).unwrap();
    (inputs, features)
}

#[test]
fn a_patient_from_fhir_gets_the_prediction_her_cohort_row_gets() {
    let model = Model::load(&bundle_dir()).unwrap();
    assert_eq!(model.manifest.name, "gbsg2-recurrence");
    let size: u64 = std::fs::read_dir(bundle_dir())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(size < 1 << 20, "the bundle is {size} bytes, over 1 MiB");

    let (from_fhir, features) = fhir_inputs(&model, true);
    assert!(features.unfilled.is_empty(), "{:?}", features.unfilled);
    let (age, _) = features.value("age").unwrap();

    // The same patient as a GBSG2 row.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("one.csv");
    std::fs::write(
        &csv,
        format!("horTh,age,menostat,tsize,tgrade,pnodes,progrec,estrec,time,cens\nno,{age},Post,21,II,3,48,66,1000,0\n"),
    )
    .unwrap();
    let mut cohort = read_cohort(&csv).unwrap();
    // Recoded as training recoded GBSG2: receptor levels at 10 fmol/mg, nodes as ranges.
    recode_for_spec(&mut cohort, model.manifest.inputs.as_ref().unwrap()).unwrap();
    let (from_row, unseen) = cohort_inputs(&cohort, &model.manifest.layout, &[0]).unwrap();
    assert_eq!(unseen, 0);
    for (a, b) in from_fhir.modalities.iter().zip(&from_row.modalities) {
        for (x, y) in a.values.iter().zip(&b.values) {
            assert!((x - y).abs() < 1e-4, "{:?} vs {:?}", a.values, b.values);
        }
        assert_eq!(a.mask, b.mask);
    }
    let fhir = model.predict(&from_fhir, true).unwrap().remove(0);
    let row = model.predict(&from_row, false).unwrap().remove(0);
    assert!(
        (fhir.risk - row.risk).abs() < 1e-5,
        "{} vs {}",
        fhir.risk,
        row.risk
    );
    assert!(fhir.missing.is_empty());
    let probabilities: Vec<f64> = fhir.horizons.iter().map(|h| h.event_probability).collect();
    assert_eq!(probabilities.len(), 3);
    assert!(
        probabilities.windows(2).all(|w| w[0] <= w[1]),
        "{probabilities:?}"
    );
    assert!(!fhir.top_features.is_empty());
}

#[test]
fn without_the_pathology_results_the_prediction_names_what_is_missing() {
    let model = Model::load(&bundle_dir()).unwrap();
    let (inputs, features) = fhir_inputs(&model, false);
    let unfilled: Vec<&str> = features
        .unfilled
        .iter()
        .map(|u| u.feature.as_str())
        .collect();
    assert_eq!(unfilled, ["progrec", "estrec", "pnodes", "tsize"]);
    let prediction = model.predict(&inputs, true).unwrap().remove(0);
    assert_eq!(prediction.missing, [Modality::Labs]);
    assert!(
        prediction
            .horizons
            .iter()
            .all(|h| (0.0..=1.0).contains(&h.event_probability))
    );
}

/// The documented command trains the same model: the same features and statistics, and
/// predictions that agree with the committed bundle's on every GBSG2 patient.
#[test]
fn the_documented_command_reproduces_the_default_model() {
    let Some(gbsg2) = gbsg2_path() else { return };
    let out = tempfile::tempdir().unwrap();
    let bundle = out.path().join("gbsg2-recurrence");
    let status = Command::new(env!("CARGO_BIN_EXE_prognostics"))
        .args(train_arguments(&gbsg2, &bundle))
        .status()
        .unwrap();
    assert!(status.success());
    let committed = Model::load(&bundle_dir()).unwrap();
    let retrained = Model::load(&bundle).unwrap();
    assert_eq!(retrained.manifest.layout, committed.manifest.layout);
    let mut cohort = read_cohort(&gbsg2).unwrap();
    recode_for_spec(&mut cohort, committed.manifest.inputs.as_ref().unwrap()).unwrap();
    let rows: Vec<usize> = (0..cohort.rows).collect();
    let (inputs, _) = cohort_inputs(&cohort, &committed.manifest.layout, &rows).unwrap();
    let a = committed.risk(&inputs).unwrap();
    let b = retrained.risk(&inputs).unwrap();
    let correlation = pearson(&a, &b);
    assert!(correlation > 0.99, "correlation {correlation}");
}

/// The arguments scripts/train-default-model passes, read from the script itself so that the
/// test follows it.
fn train_arguments(cohort: &Path, out: &Path) -> Vec<String> {
    let script = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/train-default-model"),
    )
    .unwrap();
    let command = script
        .split("-- train")
        .nth(1)
        .expect("the script runs `prognostics train`")
        .replace("\\\n", " ");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args = vec!["train".to_owned()];
    let mut words = command.split_whitespace();
    while let Some(word) = words.next() {
        match word {
            "--cohort" => {
                words.next();
                args.extend(["--cohort".into(), cohort.display().to_string()]);
            }
            "--out" => {
                words.next();
                args.extend(["--out".into(), out.display().to_string()]);
            }
            "--inputs" => {
                let path = words.next().unwrap();
                args.extend(["--inputs".into(), root.join(path).display().to_string()]);
            }
            other => args.push(other.to_owned()),
        }
    }
    args
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}
