//! Prediction latency of a model bundle on the CPU: `model_latency BUNDLE COHORT RUNS`
//! prepares the cohort's rows with the bundle's layout, then times `Model::predict` on one
//! patient (with and without explanations) and on 256 patients, RUNS times each. Prints
//! `{"batch1_ms": …, "batch1_explained_ms": …, "batch256_ms": …}` (medians).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use prognostics::cohort::read_cohort;
use prognostics::fusion::Model;
use prognostics::training::dataset::cohort_inputs;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let bundle = PathBuf::from(&args[0]);
    let cohort = read_cohort(&PathBuf::from(&args[1])).unwrap();
    let runs: usize = args.get(2).map_or(200, |r| r.parse().unwrap());
    let model = Model::load(&bundle).unwrap();
    let rows: Vec<usize> = (0..cohort.rows.min(256)).collect();
    let (all, _) = cohort_inputs(&cohort, &model.manifest.layout, &rows).unwrap();
    let one = all.select(&[0]);
    let time = |f: &dyn Fn()| {
        f();
        median(
            (0..runs)
                .map(|_| {
                    let started = Instant::now();
                    f();
                    started.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        )
    };
    let batch1 = time(&|| {
        model.predict(&one, false).unwrap();
    });
    let explained = time(&|| {
        model.predict(&one, true).unwrap();
    });
    let batch256 = time(&|| {
        model.predict(&all, false).unwrap();
    });
    println!(
        "{{\"batch1_ms\": {batch1:.4}, \"batch1_explained_ms\": {explained:.4}, \"batch256_ms\": {batch256:.4}, \"rows\": {}}}",
        all.rows
    );
}
