//! The survival building blocks against scikit-survival on GBSG2 (scikit-survival 0.28.0's
//! copy, fetched by scripts/fetch-test-data): Harrell's and Uno's C to the pair, and a linear
//! Cox model trained in candle with
//! `cox_loss` reaches the optimum of scikit-survival 0.25's `CoxPHSurvivalAnalysis` on the
//! same one-hot design (its `OneHotEncoder`: first level dropped), and Breslow's baseline gives
//! its survival probabilities.

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use prognostics::cohort::{Cohort, Values, read_cohort};

use crate::data::gbsg2_path;
use prognostics::survival::{
    BaselineHazard, CoxTargets, brier_scores, cox_loss, cumulative_dynamic_auc, harrell_c,
    integrated_brier_score, uno_c,
};

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

/// GBSG2 as scikit-survival ships it, read.
fn gbsg2() -> Option<Cohort> {
    Some(read_cohort(&gbsg2_path()?).unwrap())
}

#[test]
fn a_linear_cox_model_reaches_scikit_survivals_coxph_optimum_on_gbsg2() {
    let Some(cohort) = gbsg2() else {
        return;
    };
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

#[test]
fn harrell_c_on_gbsg2_matches_scikit_survival() {
    let Some(cohort) = gbsg2() else {
        return;
    };
    let survival = cohort.survival("time", "cens").unwrap();
    // scikit-survival 0.25.0, concordance_index_censored(cens, time, sign × column):
    // (c-index, concordant, discordant, tied risk, tied time).
    let expected = [
        ("pnodes", 1.0, 0.6452446795719611, 78870, 40214, 13988, 42),
        ("estrec", -1.0, 0.5909996092340989, 77041, 52822, 3209, 42),
        ("tsize", 1.0, 0.5718220211614765, 73090, 53975, 6007, 42),
    ];
    for (column, sign, c_index, concordant, discordant, tied_risk, tied_time) in expected {
        let Values::Numeric(values) = &cohort.column(column).unwrap().values else {
            panic!("{column} is numeric");
        };
        let risk: Vec<f64> = values.iter().map(|v| sign * v.unwrap()).collect();
        let c = harrell_c(&survival.time, &survival.event, &risk).unwrap();
        assert_eq!(
            (c.concordant, c.discordant, c.tied_risk, c.tied_time),
            (concordant, discordant, tied_risk, tied_time),
            "{column}"
        );
        assert!(
            (c.c_index - c_index).abs() < 1e-12,
            "{column}: {}",
            c.c_index
        );
    }
}

#[test]
fn uno_c_on_gbsg2_matches_scikit_survival() {
    let Some(cohort) = gbsg2() else {
        return;
    };
    let s = cohort.survival("time", "cens").unwrap();
    let Values::Numeric(pnodes) = &cohort.column("pnodes").unwrap().values else {
        panic!("pnodes is numeric");
    };
    let risk: Vec<f64> = pnodes.iter().map(|v| v.unwrap()).collect();
    // scikit-survival 0.25.0 concordance_index_ipcw(train, test, pnodes, tau).
    let all = (&s.time[..], &s.event[..]);
    let c = uno_c(all, &s.time, &s.event, &risk, None).unwrap();
    assert!(
        (c.c_index - 0.6459231655161249).abs() < 1e-12,
        "{}",
        c.c_index
    );
    let c = uno_c(all, &s.time, &s.event, &risk, Some(1825.0)).unwrap();
    assert!(
        (c.c_index - 0.6298304981001723).abs() < 1e-12,
        "{}",
        c.c_index
    );
    // Censoring learnt from the first 400 rows, scored on the other 286.
    let train = (&s.time[..400], &s.event[..400]);
    let c = uno_c(
        train,
        &s.time[400..],
        &s.event[400..],
        &risk[400..],
        Some(1825.0),
    )
    .unwrap();
    assert!(
        (c.c_index - 0.6391225014779803).abs() < 1e-12,
        "{}",
        c.c_index
    );
    assert_eq!(
        (c.concordant, c.discordant, c.tied_risk, c.tied_time),
        (11787, 5976, 2058, 12)
    );
}

#[test]
fn time_dependent_auc_on_gbsg2_matches_scikit_survival() {
    let Some(cohort) = gbsg2() else {
        return;
    };
    let s = cohort.survival("time", "cens").unwrap();
    let Values::Numeric(pnodes) = &cohort.column("pnodes").unwrap().values else {
        panic!("pnodes is numeric");
    };
    let risk: Vec<f64> = pnodes.iter().map(|v| v.unwrap()).collect();
    let times = [365.0, 1095.0, 1825.0];
    let close =
        |got: &[f64], want: &[f64]| got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12);
    // scikit-survival 0.28.0 cumulative_dynamic_auc(train, test, pnodes, times): the scores
    // at each time and their mean (pnodes has many ties: they count one half).
    let all = (&s.time[..], &s.event[..]);
    let (scores, mean) = cumulative_dynamic_auc(all, &s.time, &s.event, &risk, &times).unwrap();
    assert!(
        close(
            &scores,
            &[0.7166981020108822, 0.696782457382707, 0.6535374242873669]
        ),
        "{scores:?}"
    );
    assert!((mean - 0.6872473392208085).abs() < 1e-12, "{mean}");
    let train = (&s.time[..400], &s.event[..400]);
    let (scores, mean) =
        cumulative_dynamic_auc(train, &s.time[400..], &s.event[400..], &risk[400..], &times)
            .unwrap();
    assert!(
        close(
            &scores,
            &[0.682582292818936, 0.6789916214525533, 0.6486103375781386]
        ),
        "{scores:?}"
    );
    assert!((mean - 0.6711865697920169).abs() < 1e-12, "{mean}");
}

#[test]
fn brier_scores_on_gbsg2_match_scikit_survival() {
    let Some(cohort) = gbsg2() else {
        return;
    };
    let s = cohort.survival("time", "cens").unwrap();
    let Values::Numeric(pnodes) = &cohort.column("pnodes").unwrap().values else {
        panic!("pnodes is numeric");
    };
    // A made-up model both sides compute: S(t | x) = exp(−t / 2000 · exp(0.05 · pnodes)).
    let times = [365.0, 730.0, 1095.0, 1460.0, 1825.0];
    let survival: Vec<Vec<f64>> = pnodes
        .iter()
        .map(|p| {
            let hazard = (0.05 * p.unwrap()).exp();
            times
                .iter()
                .map(|t: &f64| (-t / 2000.0 * hazard).exp())
                .collect()
        })
        .collect();
    let all = (&s.time[..], &s.event[..]);
    // scikit-survival 0.25.0 brier_score(y, y, estimate, times); the integrated score as its
    // integrated_brier_score computes it (trapezoid / time span).
    let expected = [
        0.09376199323398746,
        0.19288562871772055,
        0.22974886552736792,
        0.2530816260581178,
        0.26382470220541926,
    ];
    let scores = brier_scores(all, &s.time, &s.event, &survival, &times).unwrap();
    for (got, want) in scores.iter().zip(expected) {
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
    let integrated = integrated_brier_score(all, &s.time, &s.event, &survival, &times).unwrap();
    assert!(
        (integrated - 0.21362736700572743).abs() < 1e-12,
        "{integrated}"
    );
    assert!(integrated_brier_score(all, &s.time, &s.event, &survival, &[365.0]).is_err());
}
