//! Tests of the feature builder (`builder.rs`).

use super::*;
use crate::features::context::Measurement;
use crate::features::treatments::Treatment;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn creatinine(id: &str, value: f64, unit: Option<&str>, when: &str) -> Measurement {
    Measurement {
        source: format!("Observation/{id}"),
        codes: vec!["2160-0".into()],
        value,
        unit: unit.map(str::to_owned),
        effective: Some(at(when)),
    }
}

fn spec() -> InputSpec {
    toml::from_str(
        r#"
        [[labs]]
        name = "creatinine"
        loinc = ["2160-0"]
        unit = "umol/L"
        molar_mass = 113.12
        lookback_days = 30

        [notes]
        encoder = "text"
        dimension = 3
        "#,
    )
    .unwrap()
}

#[test]
fn the_latest_usable_result_in_the_window_is_converted_to_the_models_unit() {
    let context = PatientContext {
        measurements: vec![
            creatinine("old", 2.0, Some("mg/dL"), "2024-01-01T00:00:00Z"),
            creatinine("usable", 1.0, Some("mg/dL"), "2024-03-01T00:00:00Z"),
            creatinine("no-unit", 0.9, None, "2024-03-10T00:00:00Z"),
            creatinine("future", 5.0, Some("mg/dL"), "2024-04-01T00:00:00Z"),
        ],
        ..PatientContext::default()
    };
    let features = build_features(
        &spec(),
        &context,
        &Embeddings::default(),
        at("2024-03-15T00:00:00Z"),
    );
    // 1 mg/dL = 88.4 µmol/L.
    let (value, known) = features.value("creatinine").unwrap();
    assert!(known && (value - 88.40).abs() < 0.01, "{value}");
    assert_eq!(
        features.modality(Modality::Labs).unwrap().sources,
        ["Observation/usable"]
    );
}

#[test]
fn unusable_results_are_reported_with_their_reasons() {
    let context = PatientContext {
        measurements: vec![
            creatinine("no-unit", 0.9, None, "2024-03-10T00:00:00Z"),
            creatinine("enzyme", 3.0, Some("U/L"), "2024-03-11T00:00:00Z"),
        ],
        ..PatientContext::default()
    };
    let embeddings = Embeddings {
        notes: Some(Embedded {
            vector: vec![1.0; 5],
            sources: vec![],
        }),
        imaging: None,
    };
    let features = build_features(&spec(), &context, &embeddings, at("2024-03-15T00:00:00Z"));
    assert_eq!(features.value("creatinine"), Some((0.0, false)));
    let reasons: Vec<&str> = features
        .unfilled
        .iter()
        .map(|u| u.reason.as_str())
        .collect();
    assert!(
        reasons[0].contains("Observation/no-unit has no unit"),
        "{reasons:?}"
    );
    assert!(
        reasons[0].contains("`U/L` cannot be converted"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("has 5 values, the model expects 3"),
        "{reasons:?}"
    );
    assert!(!features.modality(Modality::Notes).unwrap().present);
}

fn coded(id: &str, code: &str, answer: &str, when: &str) -> CodedResult {
    CodedResult {
        source: format!("Observation/{id}"),
        codes: vec![code.into()],
        answer: vec![answer.into()],
        answer_text: None,
        effective: Some(at(when)),
    }
}

fn tamoxifen(id: &str, given: bool, when: &str) -> Treatment {
    Treatment {
        source: format!("MedicationStatement/{id}"),
        codes: vec!["10324".into()],
        given,
        date: Some(at(when)),
    }
}

#[test]
fn coded_findings_and_treatments_become_the_levels_of_their_columns() {
    let spec: InputSpec = toml::from_str(
        r#"
        [clinical]
        age = true
        [[clinical.categories]]
        name = "menostat"
        codes = ["161712005"]
        levels = { Pre = ["22636003"], Post = ["76498008"] }
        [[clinical.categories]]
        name = "tgrade"
        codes = ["33732-9"]
        levels = { I = ["54102005"], II = ["1663004"] }
        [[clinical.treatments]]
        name = "horTh"
        codes = ["10324"]
        given = "yes"
        not_given = "no"
        [[clinical.treatments]]
        name = "chemo"
        codes = ["367336001"]
        given = "yes"
        not_given = "no"
        "#,
    )
    .unwrap();
    spec.validate().unwrap();
    let context = PatientContext {
        birth_date: chrono::NaiveDate::from_ymd_opt(1964, 3, 15),
        coded_results: vec![
            coded("pre", "161712005", "22636003", "2020-01-01T00:00:00Z"),
            coded("post", "161712005", "76498008", "2024-01-01T00:00:00Z"),
            coded("later", "161712005", "22636003", "2025-01-01T00:00:00Z"),
            coded("grade", "33732-9", "61026006", "2024-01-01T00:00:00Z"),
        ],
        treatments: vec![
            tamoxifen("declined", false, "2023-06-01T00:00:00Z"),
            tamoxifen("taken", true, "2023-09-01T00:00:00Z"),
        ],
        ..PatientContext::default()
    };
    let features = build_features(
        &spec,
        &context,
        &Embeddings::default(),
        at("2024-03-15T00:00:00Z"),
    );
    let (age, known) = features.value("age").unwrap();
    assert!(
        known && (age - 60.0).abs() < 0.01,
        "years, as the cohort has them: {age}"
    );
    // The latest finding up to the prediction, not the one after it.
    assert_eq!(features.value("menostat=Post"), Some((1.0, true)));
    assert_eq!(features.value("menostat=Pre"), Some((0.0, true)));
    // G3 is not among the model's levels: unknown, with the reason.
    assert_eq!(features.value("tgrade=I"), Some((0.0, false)));
    assert_eq!(features.value("tgrade=II"), Some((0.0, false)));
    // Declined once, taken later: given.
    assert_eq!(features.value("horTh=yes"), Some((1.0, true)));
    assert_eq!(features.value("horTh=no"), Some((0.0, true)));
    // No record at all: unknown rather than "not given".
    assert_eq!(features.value("chemo=no"), Some((0.0, false)));
    let reasons: Vec<(&str, &str)> = features
        .unfilled
        .iter()
        .map(|u| (u.feature.as_str(), u.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                "tgrade",
                "findings recorded, none answered with a known level"
            ),
            ("chemo", "no record of it being given or not given"),
        ]
    );
    let clinical = features.modality(Modality::Clinical).unwrap();
    assert!(
        clinical
            .sources
            .contains(&"MedicationStatement/taken".to_owned())
    );
    assert!(clinical.sources.contains(&"Observation/post".to_owned()));

    // Before the tamoxifen was taken, only the refusal is on record.
    let earlier = build_features(
        &spec,
        &context,
        &Embeddings::default(),
        at("2023-07-01T00:00:00Z"),
    );
    assert_eq!(earlier.value("horTh=no"), Some((1.0, true)));
    assert_eq!(
        spec_features(&spec).len(),
        1 + 2 + 2 + 2 + 2,
        "age, two levels each"
    );
}

#[test]
fn specs_that_cannot_work_are_refused() {
    let bad = [
        ("[[labs]]\nname='a'\nloinc=['1']\nunit='furlong'", "furlong"),
        ("[[labs]]\nname='a'\nloinc=[]\nunit='mg'", "has no code"),
        (
            "[[clinical.categories]]\nname='g'\ncodes=['1']\nlevels={}",
            "no levels",
        ),
        (
            "[[clinical.categories]]\nname='g'\ncodes=['1']\nlevels={I=['a'],II=['a']}",
            "two levels",
        ),
        (
            "[[clinical.treatments]]\nname='t'\ncodes=['1']\ngiven='y'\nnot_given='y'",
            "the same level",
        ),
        (
            "[[labs]]\nname='g'\nloinc=['1']\nunit='mg'\n[[clinical.categories]]\nname='g'\ncodes=['1']\nlevels={I=['a']}",
            "twice",
        ),
        ("[genomics]\ngenes=['TP53','TP53']", "twice"),
        ("[notes]\nencoder='x'\ndimension=0", "dimension"),
    ];
    for (text, expected) in bad {
        let spec: InputSpec = toml::from_str(text).unwrap();
        let error = spec.validate().unwrap_err().to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
    assert!(toml::from_str::<InputSpec>("[clinical]\nweight = true").is_err());
}
