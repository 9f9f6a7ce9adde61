//! The monitoring proved on shifts whose truth is known. The default model's cohort (GBSG2, as
//! scripts/fetch-test-data fetches it) is assessed by the shipped model as the service would
//! keep it (inputs as recorded, predictions, outcomes paired), then changed one way at a time:
//! a laboratory reporting tumour sizes 40 % larger (input drift), a population whose hazard is
//! higher (calibration), a subgroup whose outcomes the model no longer ranks (subgroup gap).
//! Each raises its own alert and no other, and the unchanged cohort raises none. A shadow
//! model given more of the record is seen to discriminate better than the active one.
//! A scanner change is proved on a model that takes images, trained here: images rendered
//! otherwise under the same header are told by the embeddings alone, a new scanner by the
//! embeddings and the acquisition headers.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use prognostics::cohort::{Cohort, Survival, Values, read_cohort};
use prognostics::fusion::{Model, Prediction};
use prognostics::pipeline::alerts::{AlertThresholds, judge};
use prognostics::pipeline::monitoring::{
    InputSnapshot, Judged, PairedAssessment, acquisition_counts, age_band, drift_of, performance_of,
};
use prognostics::training::dataset::cohort_inputs;
use prognostics::training::inputs::recode_for_spec;

use crate::data::gbsg2_path;

fn model() -> Model {
    Model::load(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/risk/gbsg2-recurrence"),
    )
    .unwrap()
}

fn card_c() -> f64 {
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("models/risk/gbsg2-recurrence/model-card.json"),
        )
        .unwrap(),
    )
    .unwrap();
    card["test_metrics"]["harrell_c"].as_f64().unwrap()
}

fn cohort(model: &Model) -> Option<(Cohort, Survival)> {
    let mut cohort = read_cohort(&gbsg2_path()?).unwrap();
    recode_for_spec(&mut cohort, model.manifest.inputs.as_ref().unwrap()).unwrap();
    let survival = cohort.survival("time", "cens").unwrap();
    Some((cohort, survival))
}

fn numeric_mut<'a>(cohort: &'a mut Cohort, name: &str) -> &'a mut Vec<Option<f64>> {
    match &mut cohort
        .columns
        .iter_mut()
        .find(|c| c.name == name)
        .unwrap()
        .values
    {
        Values::Numeric(values) => values,
        Values::Categorical { .. } => panic!("{name} is categorical"),
    }
}

fn predictions(model: &Model, cohort: &Cohort) -> Vec<Prediction> {
    let rows: Vec<usize> = (0..cohort.rows).collect();
    let (inputs, _) = cohort_inputs(cohort, &model.manifest.layout, &rows).unwrap();
    model.predict(&inputs, false).unwrap()
}

/// What the service keeps of each assessment's inputs, from the cohort's row.
fn snapshots(model: &Model, cohort: &Cohort, predicted: &[Prediction]) -> Vec<InputSnapshot> {
    let mut columns: Vec<&str> = Vec::new();
    for feature in model
        .manifest
        .layout
        .modalities
        .iter()
        .flat_map(|m| &m.features)
    {
        if let Some(source) = &feature.source
            && !columns.contains(&source.column())
        {
            columns.push(source.column());
        }
    }
    (0..cohort.rows)
        .map(|row| {
            let mut snapshot = InputSnapshot {
                log_hazard_ratio: predicted[row].risk,
                ..InputSnapshot::default()
            };
            for name in &columns {
                match &cohort.column(name).unwrap().values {
                    Values::Numeric(values) => match values[row] {
                        Some(v) => {
                            snapshot.numbers.insert((*name).to_owned(), v);
                        }
                        None => snapshot.missing.push((*name).to_owned()),
                    },
                    Values::Categorical { levels, codes } => match codes[row] {
                        Some(c) => {
                            snapshot
                                .levels
                                .insert((*name).to_owned(), levels[c].clone());
                        }
                        None => snapshot.missing.push((*name).to_owned()),
                    },
                }
            }
            snapshot
        })
        .collect()
}

/// Assessed over two years, a week apart in turn, each paired with the cohort's follow-up.
fn paired(
    model: &Model,
    cohort: &Cohort,
    survival: &Survival,
    predicted: &[Prediction],
) -> Vec<PairedAssessment> {
    let unit_days = model.manifest.outcome.time_unit.days();
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let ages = match &cohort.column("age").unwrap().values {
        Values::Numeric(v) => v.clone(),
        Values::Categorical { .. } => unreachable!(),
    };
    (0..cohort.rows)
        .map(|row| PairedAssessment {
            assessed: start + Duration::days((row as i64 * 7) % 730),
            days: survival.time[row] * unit_days,
            event: survival.event[row],
            horizons: predicted[row]
                .horizons
                .iter()
                .map(|h| (h.label.clone(), h.time * unit_days, h.event_probability))
                .collect(),
            groups: vec![
                ("sex".into(), "female".into()),
                ("age".into(), age_band(ages[row].unwrap()).into()),
            ],
        })
        .collect()
}

/// The alerts a cohort raises, as the monitoring job would judge it.
fn alerts(model: &Model, cohort: &Cohort, survival: &Survival) -> Vec<String> {
    let predicted = predictions(model, cohort);
    let (name, version) = (&model.manifest.name, &model.manifest.version);
    let performance = performance_of(
        Judged {
            model: name.clone(),
            version: version.clone(),
            role: "active",
            assessments: cohort.rows,
            unusable: BTreeMap::new(),
            outcome_definition: "own",
        },
        &paired(model, cohort, survival, &predicted),
    );
    let drift = drift_of(
        model,
        "active",
        "2025-01-01T00:00:00Z".into(),
        &snapshots(model, cohort, &predicted),
        &BTreeMap::new(),
    );
    let card = card_c();
    judge(
        &[performance],
        &[drift],
        &[],
        &AlertThresholds::default(),
        |_, _| Some(card),
    )
    .into_iter()
    .map(|(_, _, kind, detail)| {
        eprintln!("{kind}: {detail}");
        kind
    })
    .collect()
}

#[test]
fn each_known_shift_raises_its_own_alert_and_the_control_none() {
    let model = model();
    let Some((cohort, survival)) = cohort(&model) else {
        return;
    };
    assert!(
        model.manifest.reference.is_some(),
        "the bundle keeps its training distributions"
    );

    // The cohort as it is: nothing to say.
    assert_eq!(alerts(&model, &cohort, &survival), Vec::<String>::new());

    // A laboratory reporting every tumour size 40 % larger (a bias, or a unit mix-up).
    let mut biased = cohort.clone();
    for v in numeric_mut(&mut biased, "tsize").iter_mut().flatten() {
        *v *= 1.4;
    }
    assert_eq!(alerts(&model, &biased, &survival), ["input-drift:tsize"]);

    // A population whose hazard is higher: the same ranking, every event sooner.
    let sooner = Survival {
        time: survival.time.iter().map(|t| t / 2.5).collect(),
        event: survival.event.clone(),
    };
    assert_eq!(alerts(&model, &cohort, &sooner), ["calibration"]);

    // A subgroup the model no longer ranks: the outcomes of the patients aged 65 to 74
    // shuffled among themselves.
    let ages = match &cohort.column("age").unwrap().values {
        Values::Numeric(v) => v.clone(),
        Values::Categorical { .. } => unreachable!(),
    };
    let young: Vec<usize> = (0..cohort.rows)
        .filter(|&r| (65.0..75.0).contains(&ages[r].unwrap()))
        .collect();
    let mut shuffled = young.clone();
    let mut rng = prognostics::fusion::Rng::new(11);
    rng.shuffle(&mut shuffled);
    let mut apart = survival.clone();
    for (&to, &from) in young.iter().zip(&shuffled) {
        apart.time[to] = survival.time[from];
        apart.event[to] = survival.event[from];
    }
    assert_eq!(alerts(&model, &cohort, &apart), ["subgroup-gap:age"]);
}

#[test]
fn a_shadow_that_knows_more_is_seen_to_discriminate_better() {
    let model = model();
    let Some((cohort, survival)) = cohort(&model) else {
        return;
    };
    // The active answers without the pathology the shadow is given (nodes, size, receptors).
    let mut partial = cohort.clone();
    for column in &mut partial.columns {
        if ["pnodes", "tsize", "progrec", "estrec"].contains(&column.name.as_str()) {
            match &mut column.values {
                Values::Numeric(v) => v.iter_mut().for_each(|x| *x = None),
                Values::Categorical { codes, .. } => codes.iter_mut().for_each(|x| *x = None),
            }
        }
    }
    let judged = |role: &'static str| Judged {
        model: model.manifest.name.clone(),
        version: model.manifest.version.clone(),
        role,
        assessments: cohort.rows,
        unusable: BTreeMap::new(),
        outcome_definition: "own",
    };
    let active = performance_of(
        judged("active"),
        &paired(&model, &partial, &survival, &predictions(&model, &partial)),
    );
    let shadow = performance_of(
        judged("shadow"),
        &paired(&model, &cohort, &survival, &predictions(&model, &cohort)),
    );
    let (a, s) = (active.harrell_c.unwrap(), shadow.harrell_c.unwrap());
    eprintln!("active C {a:.3}, shadow C {s:.3}");
    assert!(s > a + 0.03, "shadow {s:.3} against active {a:.3}");
    // Side by side horizon by horizon too: the shadow's AUC at every horizon is higher.
    for (x, y) in active.horizons.iter().zip(&shadow.horizons) {
        assert!(y.auc.unwrap() > x.auc.unwrap(), "{} {y:?} {x:?}", x.label);
    }
}

/// Patients with an age, an LDH and a 16-wide image embedding (uniform noise around 0, plus
/// `offset` on every component: what a new scanner's brighter images do to an encoder), their
/// hazard from age and LDH; as a cohort file.
fn imaging_cohort(path: &std::path::Path, seed: u64, rows: usize, offset: f64) -> Cohort {
    let mut rng = prognostics::fusion::Rng::new(seed);
    let mut csv = String::from("age,ldh,time,event");
    for i in 0..16 {
        csv += &format!(",imaging_{i}");
    }
    csv.push('\n');
    for _ in 0..rows {
        let age = 40.0 + 40.0 * rng.uniform();
        let ldh = 150.0 + 200.0 * rng.uniform();
        let hazard = 0.03 * (age - 60.0) + 0.01 * (ldh - 250.0);
        let time = (-(1.0 - rng.uniform()).ln() / (0.0005 * f64::exp(hazard))).min(3000.0) + 1.0;
        csv += &format!("{age:.1},{ldh:.0},{time:.0},{}", u8::from(time < 3000.0));
        for _ in 0..16 {
            csv += &format!(",{:.4}", rng.uniform() - 0.5 + offset);
        }
        csv.push('\n');
    }
    std::fs::write(path, csv).unwrap();
    read_cohort(path).unwrap()
}

/// The whitened principal-component scores the service keeps of each row's embedding.
fn embedding_snapshots(
    model: &Model,
    cohort: &Cohort,
    predicted: &[Prediction],
) -> Vec<InputSnapshot> {
    let imaging = model
        .manifest
        .layout
        .modalities
        .iter()
        .find(|m| m.projection.is_some())
        .expect("an embedding modality with a projection");
    let projection = imaging.projection.as_ref().unwrap();
    let columns: Vec<&Vec<Option<f64>>> = imaging
        .features
        .iter()
        .map(|f| match &cohort.column(&f.name).unwrap().values {
            Values::Numeric(v) => v,
            Values::Categorical { .. } => unreachable!(),
        })
        .collect();
    (0..cohort.rows)
        .map(|row| {
            let embedding: Vec<f32> = columns.iter().map(|c| c[row].unwrap() as f32).collect();
            let mut snapshot = InputSnapshot {
                log_hazard_ratio: predicted[row].risk,
                ..InputSnapshot::default()
            };
            snapshot.embeddings.insert(
                imaging.modality.to_string(),
                projection.scores(&embedding).unwrap(),
            );
            for name in ["age", "ldh"] {
                if let Values::Numeric(v) = &cohort.column(name).unwrap().values {
                    snapshot.numbers.insert(name.into(), v[row].unwrap());
                }
            }
            snapshot
        })
        .collect()
}

#[test]
fn a_scanner_change_is_told_by_its_embeddings_and_its_headers() {
    use prognostics::domain::{Horizon, TimeUnit};
    use prognostics::fusion::TrainSettings;
    use prognostics::training::{ColumnRoles, TrainOptions, train};

    let dir = tempfile::tempdir().unwrap();
    let training = dir.path().join("training.csv");
    imaging_cohort(&training, 1, 400, 0.0);
    let out = dir.path().join("model");
    train(
        &TrainOptions {
            cohort: training,
            roles: ColumnRoles {
                time: "time".into(),
                event: "event".into(),
                embedding_components: 4,
                ..ColumnRoles::default()
            },
            out: out.clone(),
            name: "ldh-imaging".into(),
            settings: TrainSettings {
                seed: 1,
                members: 1,
                max_epochs: 20,
                patience: 5,
                ..TrainSettings::default()
            },
            test_fraction: 0.2,
            horizons: vec![Horizon::new(1.0, TimeUnit::Years).unwrap()],
            time_unit: TimeUnit::Days,
            triage_recall: 0.9,
            subgroups: vec![],
            inputs: None,
        },
        &mut |_| {},
    )
    .unwrap();
    let model = Model::load(&out).unwrap();
    let thresholds = AlertThresholds::default();
    // Before the window, 300 studies from one scanner.
    let scanner = |manufacturer: &str, model: &str| {
        BTreeMap::from([
            ("manufacturer".to_owned(), manufacturer.to_owned()),
            ("model".to_owned(), model.to_owned()),
        ])
    };
    let earlier: Vec<InputSnapshot> = (0..300)
        .map(|_| InputSnapshot {
            acquisition: scanner("GE MEDICAL SYSTEMS", "LightSpeed16"),
            ..InputSnapshot::default()
        })
        .collect();
    let before = acquisition_counts(&earlier);
    let kinds = |offset: f64, seed: u64, acquired: &BTreeMap<String, String>| -> Vec<String> {
        let cohort = imaging_cohort(
            &dir.path().join(format!("new-{seed}.csv")),
            seed,
            300,
            offset,
        );
        let predicted = predictions(&model, &cohort);
        let mut snapshots = embedding_snapshots(&model, &cohort, &predicted);
        for s in &mut snapshots {
            s.acquisition = acquired.clone();
        }
        let drift = drift_of(
            &model,
            "active",
            "2025-01-01T00:00:00Z".into(),
            &snapshots,
            &before,
        );
        assert_eq!(drift.embeddings.len(), 1, "the imaging embedding is judged");
        for e in &drift.embeddings {
            eprintln!(
                "offset {offset}: {} moved {:.3}, spread {:.3}",
                e.modality, e.shift.mean_shift, e.shift.spread
            );
        }
        judge(&[], &[drift], &[], &thresholds, |_, _| None)
            .into_iter()
            .map(|raised| raised.2)
            .collect()
    };
    let same = scanner("GE MEDICAL SYSTEMS", "LightSpeed16");
    // New patients from the same scanner: nothing.
    assert_eq!(kinds(0.0, 2, &same), Vec::<String>::new());
    // The same patients' images rendered brighter by a scanner whose header says the same (a
    // reconstruction change: every component of the embedding up by 0.6, about two of its
    // standard deviations): the embeddings tell it.
    assert_eq!(kinds(0.6, 2, &same), ["embedding-drift:imaging"]);
    // A new scanner, which renders them so: the headers tell it too.
    assert_eq!(
        kinds(0.6, 2, &scanner("SIEMENS", "SOMATOM Force")),
        [
            "embedding-drift:imaging",
            "acquisition-change:manufacturer",
            "acquisition-change:model"
        ]
    );
}
