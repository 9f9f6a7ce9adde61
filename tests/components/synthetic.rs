//! The synthetic multimodal cohort as `prognostics synthesize` writes it, with the real
//! encoders (scripts/fetch-models) and the pydicom backgrounds (scripts/fetch-test-data): the
//! file has every modality's columns, missing modalities are empty cells, the same seed writes
//! the same file, and the modality ablation runs on it.

use std::path::{Path, PathBuf};

use prognostics::cli::synthesize::synthesize_cohort;
use prognostics::cohort::{Values, read_cohort};
use prognostics::domain::{Horizon, TimeUnit};
use prognostics::encoders::{ImageEncoder, ModelManifest, TextEncoder};
use prognostics::features::Modality;
use prognostics::fusion::TrainSettings;
use prognostics::training::ColumnRoles;
use prognostics::training::ablation::ablation;
use prognostics::training::commands::load_cohort;
use prognostics::training::dataset::plan_layout;
use prognostics::training::fit::FitOptions;

fn years(n: f64) -> Horizon {
    Horizon::new(n, TimeUnit::Years).unwrap()
}

fn ready() -> Option<(ModelManifest, Vec<PathBuf>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let backgrounds: Vec<PathBuf> = [
        ".cache/test-data/pydicom-3.0.2/pydicom/data/test_files/CT_small.dcm",
        ".cache/test-data/pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    let weights = root.join("models/weights");
    let present = backgrounds.iter().all(|p| p.exists())
        && weights.join("all-minilm-l6-v2/model.safetensors").exists()
        && weights.join("efficientnet-lite0-57934424.pth").exists();
    if !present {
        assert!(
            std::env::var_os("TEST_REQUIRE_DATA").is_none(),
            "run scripts/fetch-models and scripts/fetch-test-data"
        );
        return None;
    }
    Some((
        ModelManifest::read(&root.join("models")).unwrap(),
        backgrounds,
    ))
}

#[test]
fn the_synthetic_cohort_is_written_whole_and_the_same_for_a_seed() {
    let Some((manifest, backgrounds)) = ready() else {
        return;
    };
    let device = prognostics::encoders::device();
    let (_, entry) = manifest.image_encoder(None).unwrap();
    let image = ImageEncoder::load(&manifest, entry, &device).unwrap();
    let text = TextEncoder::load(&manifest, None, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    let mut calls = 0;
    let written = synthesize_cohort(&a, 48, 3, &backgrounds, &image, &text, &mut |_, _| {
        calls += 1
    })
    .unwrap();
    synthesize_cohort(&b, 48, 3, &backgrounds, &image, &text, &mut |_, _| {}).unwrap();
    assert!(calls > 0);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

    let cohort = read_cohort(&a).unwrap();
    assert_eq!(cohort.rows, 48);
    assert_eq!(written.columns, 11 + 384 + 1280);
    assert_eq!(cohort.columns.len(), written.columns);
    // A patient without an image has empty imaging cells and no urgent label.
    let without = written
        .patients
        .iter()
        .position(|p| p.lesion.is_none())
        .unwrap();
    let Values::Numeric(imaging) = &cohort.column("imaging_0").unwrap().values else {
        panic!("numeric embedding");
    };
    let Values::Numeric(urgent) = &cohort.column("urgent").unwrap().values else {
        panic!("numeric label");
    };
    assert_eq!((imaging[without], urgent[without]), (None, None));
    let with = written
        .patients
        .iter()
        .position(|p| p.lesion.is_some())
        .unwrap();
    assert!(imaging[with].is_some());

    // The ablation trains the fused model and one per modality on it.
    let roles = ColumnRoles {
        time: "time".into(),
        event: "event".into(),
        patient: Some("id".into()),
        modalities: vec![
            (Modality::Labs, vec!["ldh".into(), "albumin".into()]),
            (Modality::Genomics, vec!["tp53".into(), "brca2".into()]),
        ],
        exclude: vec!["urgent".into()],
        ..ColumnRoles::default()
    };
    let (cohort, survival) = load_cohort(&a, &roles).unwrap();
    // Embeddings enter the network as their leading principal components when asked.
    let rows: Vec<usize> = (0..cohort.rows).collect();
    let reduced = ColumnRoles {
        embedding_components: 8,
        ..roles.clone()
    };
    let layout = plan_layout(&cohort, &reduced, &rows).unwrap();
    let imaging = layout
        .modalities
        .iter()
        .find(|m| m.modality == Modality::Imaging)
        .unwrap();
    assert_eq!(imaging.input_width(), 8);
    assert_eq!(imaging.projection.as_ref().unwrap().mean.len(), 1280);
    let layout = plan_layout(&cohort, &roles, &rows).unwrap();
    let notes = layout
        .modalities
        .iter()
        .find(|m| m.modality == Modality::Notes)
        .unwrap();
    assert!(notes.projection.is_none() && notes.input_width() == 384);
    let options = FitOptions {
        name: "ablation".into(),
        settings: TrainSettings {
            members: 1,
            max_epochs: 20,
            ..TrainSettings::default()
        },
        horizons: vec![years(1.0)],
        time_unit: TimeUnit::Days,
        triage_recall: 0.9,
    };
    let result = ablation(
        &cohort,
        &survival,
        &roles,
        &options,
        0.25,
        Some("true_log_hazard"),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(result.test_patients, 12);
    assert!(result.oracle.is_some() && result.fused.is_some());
    let names: Vec<Modality> = result.modalities.iter().map(|m| m.modality).collect();
    assert_eq!(names, Modality::ALL.to_vec());
}
