//! The survival building blocks against scikit-survival on GBSG2 (scikit-survival 0.28.0's
//! copy, fetched by scripts/fetch-test-data): a linear Cox model trained in candle with
//! `cox_loss` reaches the optimum of scikit-survival 0.25's `CoxPHSurvivalAnalysis` on the
//! same one-hot design (its `OneHotEncoder`: first level dropped), and Breslow's baseline gives
//! its survival probabilities.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use prognostics::cohort::{Values, read_cohort};
use prognostics::survival::{BaselineHazard, CoxTargets, cox_loss, harrell_c};

/// scikit-survival's figures: mean negative log partial likelihood (Breslow) at its optimum,
/// and Harrell's C of its risk on the same rows.
const SKSURV_LOSS: f64 = 5.805412770592076;
const SKSURV_C: f64 = 0.6918209690994349;
/// Its `predict_survival_function` for the first four patients at 365, 1095 and 1825 days.
const SKSURV_SURVIVAL: [[f64; 3]; 4] = [
    [0.923225, 0.647412, 0.47444],
    [0.931311, 0.678882, 0.514675],
    [0.906974, 0.587763, 0.401967],
    [0.940183, 0.714835, 0.5623],
];

#[test]
fn a_linear_cox_model_reaches_scikit_survivals_coxph_optimum_on_gbsg2() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/test-data/scikit-survival-0.28.0/GBSG2.arff");
    if !path.exists() {
        assert!(
            std::env::var_os("TEST_REQUIRE_DATA").is_none(),
            "GBSG2.arff is missing: run scripts/fetch-test-data"
        );
        return;
    }
    let cohort = read_cohort(&path).unwrap();
    let survival = cohort.survival("time", "cens").unwrap();
    let numeric = |name: &str| -> Vec<f64> {
        match &cohort.column(name).unwrap().values {
            Values::Numeric(v) => v.iter().map(|x| x.unwrap()).collect(),
            Values::Categorical { .. } => panic!("{name} is numeric"),
        }
    };
    let level = |name: &str, wanted: &str| -> Vec<f64> {
        match &cohort.column(name).unwrap().values {
            Values::Categorical { levels, codes } => codes
                .iter()
                .map(|c| f64::from(u8::from(levels[c.unwrap()] == wanted)))
                .collect(),
            Values::Numeric(_) => panic!("{name} is categorical"),
        }
    };
    let columns = [
        numeric("age"),
        numeric("estrec"),
        level("horTh", "yes"),
        level("menostat", "Post"),
        numeric("pnodes"),
        numeric("progrec"),
        level("tgrade", "II"),
        level("tgrade", "III"),
        numeric("tsize"),
    ];
    // Standardised columns: the same optimum, reached in fewer steps.
    let n = cohort.rows;
    let mut design = vec![0f32; n * columns.len()];
    for (j, column) in columns.iter().enumerate() {
        let mean = column.iter().sum::<f64>() / n as f64;
        let sd = (column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        for (i, v) in column.iter().enumerate() {
            design[i * columns.len() + j] = ((v - mean) / sd) as f32;
        }
    }
    let device = Device::Cpu;
    let x = Tensor::from_vec(design, (n, columns.len()), &device).unwrap();
    let weights = Var::zeros((columns.len(), 1), candle_core::DType::F32, &device).unwrap();
    let targets = CoxTargets::new(&survival.time, &survival.event).unwrap();
    let mut optimiser = AdamW::new(
        vec![weights.clone()],
        ParamsAdamW {
            lr: 0.05,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )
    .unwrap();
    let mut loss = f64::INFINITY;
    for _ in 0..600 {
        let risk = x.matmul(weights.as_tensor()).unwrap().squeeze(1).unwrap();
        let value = cox_loss(&risk, &targets).unwrap();
        loss = f64::from(value.to_scalar::<f32>().unwrap());
        optimiser.backward_step(&value).unwrap();
    }
    assert!(
        (loss - SKSURV_LOSS).abs() < 1e-3,
        "loss {loss} vs scikit-survival's {SKSURV_LOSS}"
    );
    let risk: Vec<f64> = x
        .matmul(weights.as_tensor())
        .unwrap()
        .squeeze(1)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    let c = harrell_c(&survival.time, &survival.event, &risk).unwrap();
    eprintln!(
        "loss {loss:.6} (scikit-survival {SKSURV_LOSS:.6}), c-index {:.6} ({SKSURV_C:.6})",
        c.c_index
    );
    assert!(
        (c.c_index - SKSURV_C).abs() < 2e-3,
        "c-index {} vs scikit-survival's {SKSURV_C}",
        c.c_index
    );
    // Breslow's baseline on the same rows: survival probabilities at 1, 3 and 5 years.
    let baseline = BaselineHazard::fit(&survival.time, &survival.event, &risk);
    for (patient, expected) in SKSURV_SURVIVAL.iter().enumerate() {
        for (horizon, want) in [365.0, 1095.0, 1825.0].iter().zip(expected) {
            let got = baseline.survival(risk[patient], *horizon);
            assert!(
                (got - want).abs() < 5e-3,
                "patient {patient} at {horizon} days: {got} vs {want}"
            );
        }
    }
}
