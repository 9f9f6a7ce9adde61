#![allow(clippy::unwrap_used)]

use super::*;
use crate::features::Modality;
use crate::survival::{BaselineHazard, harrell_c};

/// A cohort with two modalities that both carry risk: clinical (two features, the second
/// sometimes unknown) and a 4-dimensional notes embedding (absent for every fifth patient).
/// Hazard = exp(x₀ + 0.8·e₀); exponential times, uniform censoring.
fn synthetic(n: usize, seed: u64) -> (FeatureLayout, Inputs, Targets) {
    let layout = FeatureLayout {
        modalities: vec![
            ModalityLayout {
                modality: Modality::Clinical,
                kind: ModalityKind::Tabular,
                features: ["x0", "x1"]
                    .iter()
                    .map(|n| Feature {
                        name: (*n).into(),
                        source: None,
                        seen: None,
                    })
                    .collect(),
                projection: None,
            },
            ModalityLayout {
                modality: Modality::Notes,
                kind: ModalityKind::Embedding,
                features: (0..4)
                    .map(|i| Feature {
                        name: format!("notes_{i}"),
                        source: None,
                        seen: None,
                    })
                    .collect(),
                projection: None,
            },
        ],
    };
    let mut rng = Rng::new(seed);
    let mut inputs = Inputs::empty(&layout);
    let mut targets = Targets {
        time: Vec::new(),
        event: Vec::new(),
        urgent: None,
    };
    for row in 0..n {
        let x0 = rng.normal();
        let x1 = rng.normal();
        let e: Vec<f64> = (0..4).map(|_| rng.normal()).collect();
        let hazard = (x0 + 0.8 * e[0]).exp();
        let t = -rng.uniform().max(1e-12).ln() / hazard;
        let c = rng.uniform() * 3.0;
        targets.time.push(t.min(c).max(1e-6));
        targets.event.push(t <= c);
        let notes_known = row % 5 != 0;
        inputs.push_row(
            &layout,
            &[
                vec![(x0 as f32, true), (x1 as f32, row % 3 != 0)],
                e.iter().map(|&v| (v as f32, notes_known)).collect(),
            ],
        );
    }
    (layout, inputs, targets)
}

fn settings(seed: u64) -> TrainSettings {
    TrainSettings {
        seed,
        hidden: 16,
        max_epochs: 150,
        patience: 20,
        learning_rate: 1e-2,
        members: 1,
        ..TrainSettings::default()
    }
}

fn fitted(seed: u64) -> (Model, Inputs, Targets) {
    let (layout, inputs, targets) = synthetic(400, 3);
    let train_rows: Vec<usize> = (0..240).collect();
    let validation_rows: Vec<usize> = (240..300).collect();
    let test_rows: Vec<usize> = (300..400).collect();
    let trained = train(
        &layout,
        &settings(seed),
        0,
        (&inputs.select(&train_rows), &targets.select(&train_rows)),
        (
            &inputs.select(&validation_rows),
            &targets.select(&validation_rows),
        ),
        &mut |_| {},
    )
    .unwrap();
    let manifest = Manifest {
        format: FORMAT.into(),
        name: "synthetic".into(),
        version: "test".into(),
        created: chrono::DateTime::UNIX_EPOCH,
        outcome: Outcome {
            time_column: "time".into(),
            event_column: "event".into(),
            time_unit: crate::domain::TimeUnit::Years,
        },
        layout: layout.clone(),
        architecture: trained.architecture.clone(),
        training: settings(seed),
        baseline: BaselineHazard {
            times: vec![0.5, 1.0],
            cumulative: vec![0.3, 0.7],
        },
        horizons: vec![
            Horizon {
                time: 0.5,
                label: "6 months".into(),
                calibration: None,
            },
            Horizon {
                time: 1.0,
                label: "1 year".into(),
                calibration: None,
            },
        ],
        triage: None,
        inputs: None,
        reference: None,
        weights_sha256: String::new(),
    };
    let model = Model::new(manifest, vec![(trained.network, trained.vars)]).unwrap();
    (model, inputs.select(&test_rows), targets.select(&test_rows))
}

fn weights_of(model: &mut Model) -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let bytes = std::fs::read(dir.path().join(WEIGHTS_FILE)).unwrap();
    (dir, bytes)
}

#[test]
fn the_same_seed_gives_the_same_weights_and_another_seed_other_weights() {
    let (mut a, _, _) = fitted(7);
    let (mut b, _, _) = fitted(7);
    let (mut c, _, _) = fitted(8);
    let (_da, wa) = weights_of(&mut a);
    let (_db, wb) = weights_of(&mut b);
    let (_dc, wc) = weights_of(&mut c);
    assert_eq!(wa, wb);
    assert_ne!(wa, wc);
    assert_eq!(a.manifest.weights_sha256, b.manifest.weights_sha256);
}

#[test]
fn the_network_learns_from_both_modalities_and_degrades_gracefully_without_one() {
    let (model, test, targets) = fitted(1);
    let c = |inputs: &Inputs, targets: &Targets| {
        harrell_c(&targets.time, &targets.event, &model.risk(inputs).unwrap())
            .unwrap()
            .c_index
    };
    let both = c(&test, &targets);
    let without_notes = c(&test.without(1), &targets);
    let with_notes: Vec<usize> = (0..test.rows)
        .filter(|&r| test.modalities[1].present[r])
        .collect();
    let without_clinical = c(
        &test.without(0).select(&with_notes),
        &targets.select(&with_notes),
    );
    // Each modality alone carries part of the signal; together they carry it all.
    assert!(both > 0.7, "both modalities: {both}");
    assert!(
        without_notes > 0.6 && without_notes < both,
        "without notes: {without_notes}"
    );
    assert!(
        without_clinical > 0.55,
        "without clinical: {without_clinical}"
    );
}

#[test]
fn a_missing_modality_is_named_and_explanations_add_up() {
    let (model, test, _) = fitted(2);
    let one = test.select(&[1]);
    let predictions = model.predict(&one, true).unwrap();
    let p = &predictions[0];
    assert!(p.missing.is_empty());
    assert!(
        p.modalities
            .iter()
            .all(|m| m.present && m.contribution.is_some())
    );
    assert!((p.modalities.iter().map(|m| m.weight).sum::<f64>() - 1.0).abs() < 1e-5);
    assert!(p.horizons[0].event_probability <= p.horizons[1].event_probability);
    // Integrated gradients: the attributions (3 here: x0, x1, the notes embedding) add up
    // to the risk minus the risk with every input at 0.
    let mut zero = one.clone();
    for m in &mut zero.modalities {
        m.values.iter_mut().for_each(|v| *v = 0.0);
        m.mask.iter_mut().for_each(|v| *v = 0.0);
    }
    let base = model.forward(&zero).unwrap().risk.to_vec1::<f32>().unwrap()[0];
    let total: f64 = p.top_features.iter().map(|f| f.attribution).sum();
    let expected = p.risk - f64::from(base);
    assert!(
        (total - expected).abs() < 0.02 + 0.05 * expected.abs(),
        "attributions {total} vs risk difference {expected}"
    );

    let without = model.predict(&one.without(1), true).unwrap();
    let p = &without[0];
    assert_eq!(p.missing, vec![Modality::Notes]);
    assert_eq!(p.modalities[1].weight, 0.0);
    assert_eq!(
        p.modalities[0].contribution, None,
        "the only modality has nothing to compare with"
    );
    assert!(matches!(
        model.predict(&one.without(0).without(1), false),
        Err(PredictError::NoInputs(0))
    ));
}

#[test]
fn a_bundle_round_trips_and_refuses_weights_that_are_not_its_own() {
    let (mut model, test, _) = fitted(3);
    let (dir, _) = weights_of(&mut model);
    let loaded = Model::load(dir.path()).unwrap();
    assert_eq!(loaded.risk(&test).unwrap(), model.risk(&test).unwrap());

    // A weights file changed after the manifest was written.
    let weights = dir.path().join(WEIGHTS_FILE);
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, &bytes).unwrap();
    let err = Model::load(dir.path()).err().unwrap();
    assert!(matches!(err, PackageError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("sha256"), "{err}");
    bytes[last] ^= 1;
    std::fs::write(&weights, &bytes).unwrap();

    // A manifest whose layout does not match the weights' shapes.
    let manifest_path = dir.path().join(MANIFEST_FILE);
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["layout"]["modalities"][0]["features"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "x2"}));
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let err = Model::load(dir.path()).err().unwrap();
    assert!(
        err.to_string()
            .contains("modality.clinical.projection.weight")
            && err.to_string().contains("shape"),
        "{err}"
    );
}
