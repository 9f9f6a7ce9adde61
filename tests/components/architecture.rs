//! Each heavyweight dependency belongs to one module; this fails when one is used elsewhere.

use std::path::{Path, PathBuf};

/// (crate path as written in code, the places allowed to use it)
const OWNERS: &[(&str, &[&str])] = &[
    ("actix_web", &["src/api/", "src/startup.rs"]),
    ("utoipa", &["src/api/", "src/startup.rs"]),
    ("sqlx", &["src/store/"]),
    ("dicom_ul", &["src/dimse/"]),
    ("dicom_object", &["src/ingest/", "src/dimse/"]),
    ("dicom_pixeldata", &["src/ingest/"]),
    ("indicatif", &["src/import.rs", "src/modelling.rs"]),
    ("candle", &["src/encoders/", "src/fusion/", "src/survival/"]),
    ("tokenizers::", &["src/encoders/"]),
    ("reqwest::", &["src/ehr/", "src/encoders/fetch.rs"]),
    ("jsonwebtoken", &["src/ehr/"]),
    ("csv::", &["src/cohort/"]),
    ("parquet::", &["src/cohort/"]),
    ("fhir_sdk::r4b::resources", &["src/report/", "src/fhir/"]),
    ("builder()", &["src/report/"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn heavyweight_crates_stay_in_the_modules_that_own_them() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 10);
    let mut violations = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(file).unwrap();
        for (needle, allowed) in OWNERS {
            if allowed.iter().any(|a| relative.starts_with(a)) {
                continue;
            }
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                if code.contains(needle) {
                    violations.push(format!("{relative}:{}: uses {needle}", n + 1));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn lower_layers_do_not_import_upper_ones() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // (module, modules it must not import)
    let rules: &[(&str, &[&str])] = &[
        (
            "src/domain/",
            &[
                "crate::fhir",
                "crate::store",
                "crate::report",
                "crate::pipeline",
                "crate::api",
            ],
        ),
        (
            "src/fhir/",
            &[
                "crate::store",
                "crate::report",
                "crate::pipeline",
                "crate::api",
            ],
        ),
        (
            "src/store/",
            &["crate::report", "crate::pipeline", "crate::api"],
        ),
        (
            "src/ingest/",
            &[
                "crate::store",
                "crate::report",
                "crate::pipeline",
                "crate::api",
                "crate::dimse",
            ],
        ),
        (
            "src/dimse/",
            &["crate::api", "crate::store", "crate::ingest"],
        ),
        (
            "src/hl7/",
            &[
                "crate::store",
                "crate::report",
                "crate::pipeline",
                "crate::api",
                "crate::mllp",
            ],
        ),
        (
            "src/mllp.rs",
            &["crate::api", "crate::store", "crate::dimse"],
        ),
        (
            "src/listener.rs",
            &["crate::api", "crate::pipeline", "crate::store"],
        ),
        (
            "src/api/",
            &["crate::ingest", "crate::dimse", "crate::encoders"],
        ),
        (
            "src/report/",
            &["crate::store", "crate::pipeline", "crate::api"],
        ),
        (
            "src/survival/",
            &[
                "crate::store",
                "crate::report",
                "crate::pipeline",
                "crate::api",
                "crate::ehr",
            ],
        ),
        (
            "src/cohort/",
            &[
                "crate::store",
                "crate::report",
                "crate::pipeline",
                "crate::api",
                "crate::ehr",
                "crate::encoders",
            ],
        ),
        (
            "src/features/",
            &[
                "crate::store",
                "crate::report",
                "crate::pipeline",
                "crate::api",
                "crate::ehr",
                "crate::encoders",
            ],
        ),
        (
            "src/fusion/",
            &[
                "crate::store",
                "crate::report",
                "crate::pipeline",
                "crate::api",
                "crate::ehr",
                "crate::cohort",
                "crate::training",
            ],
        ),
        (
            "src/training/",
            &[
                "crate::store",
                "crate::report",
                "crate::pipeline",
                "crate::api",
                "crate::ehr",
                "crate::encoders",
            ],
        ),
        (
            "src/pipeline/",
            &["crate::api", "crate::dimse", "crate::mllp", "crate::import"],
        ),
    ];
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(file).unwrap();
        for (module, forbidden) in rules {
            if !relative.starts_with(module) {
                continue;
            }
            for f in *forbidden {
                if text.contains(f) {
                    violations.push(format!("{relative} imports {f}"));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
