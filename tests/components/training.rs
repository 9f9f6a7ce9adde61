//! `prognostics train` and `evaluate` as a user meets them: a bundle trained on GBSG2 from the
//! command line, read back and evaluated; cross-validation; and cohorts with something wrong,
//! refused before any training with the row, column or file named.

use std::path::{Path, PathBuf};
use std::process::Command;

use prognostics::domain::{Horizon, TimeUnit};
use prognostics::fusion::{Model, TrainSettings};
use prognostics::training::commands::Evaluation;
use prognostics::training::{ColumnRoles, EvaluateOptions, TrainOptions, evaluate, train};

use crate::data::gbsg2_path;

fn years(n: f64) -> Horizon {
    Horizon::new(n, TimeUnit::Years).unwrap()
}

fn prognostics(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_prognostics"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn roles(time: &str, event: &str) -> ColumnRoles {
    ColumnRoles {
        time: time.into(),
        event: event.into(),
        ..ColumnRoles::default()
    }
}

fn quick(seed: u64) -> TrainSettings {
    TrainSettings {
        seed,
        members: 2,
        max_epochs: 80,
        patience: 15,
        ..TrainSettings::default()
    }
}

#[test]
fn a_bundle_trained_from_the_command_line_is_read_back_and_evaluated() {
    let Some(cohort) = gbsg2_path() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gbsg2");
    let cohort = cohort.to_str().unwrap();
    let train_into = |out: &Path| {
        let out = out.to_str().unwrap();
        prognostics(&[
            "train",
            "--cohort",
            cohort,
            "--time",
            "time",
            "--event",
            "cens",
            "--seed",
            "4",
            "--out",
            out,
            "--members",
            "3",
            "--quiet",
        ])
    };
    let (ok, stdout, stderr) = train_into(&out);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("Harrell's C"), "{stdout}");
    for file in [
        "manifest.json",
        "model.safetensors",
        "model-card.json",
        "model-card.md",
        "reliability.svg",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model-card.json")).unwrap())
            .unwrap();
    let c = card["test_metrics"]["harrell_c"].as_f64().unwrap();
    assert!((0.6..0.8).contains(&c), "held-out Harrell's C {c}");
    assert_eq!(card["data"]["rows"], 686);
    assert_eq!(
        card["test_metrics"]["horizons"].as_array().unwrap().len(),
        3
    );
    assert_eq!(card["subgroups"][0]["column"], "age");
    let markdown = std::fs::read_to_string(out.join("model-card.md")).unwrap();
    assert!(markdown.contains("## Limitations") && markdown.contains("| Uno's C |"));
    let svg = std::fs::read_to_string(out.join("reliability.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.matches("<polyline").count() == 3);

    let model = Model::load(&out).unwrap();
    assert_eq!(model.manifest.architecture.members, 3);
    assert!(
        model
            .manifest
            .horizons
            .iter()
            .all(|h| h.calibration.is_some())
    );
    assert_eq!(model.manifest.outcome.time_column, "time");

    // The same seed, the same bundle.
    let again = dir.path().join("again");
    let (ok, _, stderr) = train_into(&again);
    assert!(ok, "{stderr}");
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        std::fs::read(again.join("model.safetensors")).unwrap()
    );

    // evaluate takes the outcome columns from the bundle.
    let plot = dir.path().join("plot.svg");
    let (ok, stdout, stderr) = prognostics(&[
        "evaluate",
        "--cohort",
        cohort,
        "--model",
        out.to_str().unwrap(),
        "--json",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let evaluation: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(evaluation["kind"], "bundle");
    assert_eq!(evaluation["metrics"]["rows"], 686);
    for metric in ["harrell_c", "uno_c", "mean_auc", "integrated_brier_score"] {
        assert!(
            evaluation["metrics"][metric].as_f64().is_some(),
            "{metric}: {stdout}"
        );
    }
    assert!(
        evaluation["metrics"]["horizons"][0]["calibration_slope"]
            .as_f64()
            .is_some()
    );
    assert!(plot.exists());
}

#[test]
fn cross_validation_trains_and_scores_every_fold() {
    let Some(cohort) = gbsg2_path() else { return };
    let options = EvaluateOptions {
        cohort,
        bundle: None,
        roles: roles("time", "cens"),
        cv: (2, 3),
        settings: quick(1),
        horizons: vec![years(1.0), years(3.0)],
        time_unit: TimeUnit::Days,
        triage_recall: 0.9,
        subgroups: vec!["menostat".into()],
        plot: None,
        inputs: None,
    };
    let mut seen = Vec::new();
    let Evaluation::CrossValidation {
        results, summary, ..
    } = evaluate(&options, &mut |done, total| seen.push((done, total))).unwrap()
    else {
        panic!("a cross-validation");
    };
    assert_eq!(results.len(), 6);
    assert_eq!(seen.last(), Some(&(6, 6)));
    // Each repeat's folds partition the cohort.
    let mut rows: Vec<usize> = results[..3]
        .iter()
        .flat_map(|f| f.test_rows.clone())
        .collect();
    rows.sort_unstable();
    assert_eq!(rows, (0..686).collect::<Vec<_>>());
    let c = summary.harrell_c.unwrap();
    assert_eq!(c.folds, 6);
    assert!(c.mean > 0.62 && c.sd < 0.1, "{c:?}");
    assert_eq!(summary.subgroup_gaps[0].0, "menostat");
    assert!(
        results[0].subgroups[0]
            .groups
            .iter()
            .any(|g| g.name == "Post")
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn train_options(cohort: &Path, roles: ColumnRoles, out: PathBuf) -> TrainOptions {
    TrainOptions {
        cohort: cohort.to_owned(),
        roles,
        out,
        name: "small".into(),
        settings: quick(0),
        test_fraction: 0.2,
        horizons: vec![years(1.0)],
        time_unit: TimeUnit::Days,
        triage_recall: 0.9,
        subgroups: vec![],
        inputs: None,
    }
}

fn train_error(cohort: &Path, roles: ColumnRoles) -> String {
    let options = train_options(cohort, roles, cohort.with_extension("bundle"));
    let mut epochs = 0;
    let err = train(&options, &mut |_| epochs += 1)
        .err()
        .expect("refused");
    assert_eq!(epochs, 0, "refused only after training started: {err}");
    assert!(!options.out.exists());
    err.to_string()
}

/// 40 rows of `time,event,age,grade,notes_0,notes_1` with a few things to spoil.
fn cohort_text(spoil: impl Fn(usize, &mut Vec<String>)) -> String {
    let mut text = String::from("id,time,event,age,grade,urgent,notes_0,notes_1\n");
    for row in 0..40 {
        let mut cells: Vec<String> = vec![
            format!("p{row}"),
            format!("{}", 100 + row * 37 % 900),
            format!("{}", u8::from(row % 3 == 0)),
            format!("{}", 40 + row % 30),
            ["low", "high"][row % 2].into(),
            format!("{}", u8::from(row % 4 == 0)),
            format!("{:.3}", (row as f64 * 0.37).sin()),
            format!("{:.3}", (row as f64 * 0.11).cos()),
        ];
        spoil(row, &mut cells);
        text += &cells.join(",");
        text += "\n";
    }
    text
}

#[test]
fn bad_cohorts_are_refused_before_training_with_the_place_named() {
    let dir = tempfile::tempdir().unwrap();
    let with_id = || ColumnRoles {
        patient: Some("id".into()),
        triage: Some("urgent".into()),
        ..roles("time", "event")
    };
    let good = write(dir.path(), "good.csv", &cohort_text(|_, _| {}));

    let err = train_error(&good, roles("follow_up", "event"));
    assert!(
        err.contains("no column `follow_up`") && err.contains("time, event"),
        "{err}"
    );

    // (file, row, column index, value put there, what the refusal must say).
    let cases: [(&str, usize, usize, &str, &[&str]); 5] = [
        ("text_time.csv", 6, 1, "soon", &["row 7", "`time`", "soon"]),
        (
            "no_time.csv",
            3,
            1,
            "",
            &["row 4", "an event without a time"],
        ),
        (
            "triage.csv",
            9,
            5,
            "2",
            &["row 10", "`urgent`", "not 0 or 1"],
        ),
        ("twice.csv", 12, 0, "p2", &["row 13", "already has row 3"]),
        (
            "text_embedding.csv",
            5,
            6,
            "n/a",
            &["notes_0", "not a number"],
        ),
    ];
    for (file, at, column, value, expected) in cases {
        let text = cohort_text(|row, cells| {
            if row == at {
                cells[column] = value.into();
            }
        });
        let err = train_error(&write(dir.path(), file, &text), with_id());
        assert!(expected.iter().all(|e| err.contains(e)), "{file}: {err}");
    }

    let path = write(
        dir.path(),
        "no_events.csv",
        &cohort_text(|_, c| c[2] = "0".into()),
    );
    let err = train_error(&path, with_id());
    assert!(err.contains("no row has an event"), "{err}");

    let few = cohort_text(|row, c| c[2] = u8::from(row < 4).to_string());
    let err = train_error(&write(dir.path(), "few_events.csv", &few), with_id());
    assert!(err.contains("too few for 2 networks"), "{err}");

    let path = write(
        dir.path(),
        "empty_row.csv",
        &cohort_text(|row, c| {
            if row == 20 {
                for cell in &mut c[3..] {
                    if cell.len() != 1 {
                        cell.clear();
                    }
                }
                c[5].clear();
            }
        }),
    );
    let err = train_error(
        &path,
        ColumnRoles {
            exclude: vec!["urgent".into()],
            ..with_id()
        },
    );
    assert!(
        err.contains("row 21") && err.contains("no feature has a value"),
        "{err}"
    );
}

#[test]
fn a_cohort_whose_embeddings_are_not_the_models_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.csv", &cohort_text(|_, _| {}));
    let out = dir.path().join("bundle");
    let options = train_options(
        &good,
        ColumnRoles {
            patient: Some("id".into()),
            ..roles("time", "event")
        },
        out.clone(),
    );
    train(&options, &mut |_| {}).unwrap();
    let mut wider = cohort_text(|_, c| c.push("0.5".into()));
    wider = wider.replacen("notes_1\n", "notes_1,notes_2\n", 1);
    let wider = write(dir.path(), "wider.csv", &wider);
    let (ok, _, stderr) = prognostics(&[
        "evaluate",
        "--cohort",
        wider.to_str().unwrap(),
        "--model",
        out.to_str().unwrap(),
        "--patient",
        "id",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("the notes embedding has 3 columns here, the model takes 2"),
        "{stderr}"
    );
}
