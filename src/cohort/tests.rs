use std::io::Write;
use std::path::PathBuf;

use super::*;

/// scikit-survival 0.28.0's datasets, fetched by scripts/fetch-test-data.
fn dataset(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/test-data/scikit-survival-0.28.0")
        .join(name);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("TEST_REQUIRE_DATA").is_none(),
        "{name} is missing: run scripts/fetch-test-data"
    );
    None
}

fn csv(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cohort.csv");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    (dir, path)
}

#[test]
fn gbsg2_reads_as_scikit_survival_describes_it() {
    let Some(path) = dataset("GBSG2.arff") else {
        return;
    };
    let cohort = read_cohort(&path).unwrap();
    assert_eq!(cohort.rows, 686);
    let names: Vec<&str> = cohort.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "horTh", "age", "menostat", "tsize", "tgrade", "pnodes", "progrec", "estrec", "time",
            "cens"
        ]
    );
    let Values::Categorical { levels, codes } = &cohort.column("tgrade").unwrap().values else {
        panic!("tgrade is nominal");
    };
    assert_eq!(levels, &["I", "II", "III"]);
    assert_eq!(codes[0], Some(1), "the first patient is grade II");
    let survival = cohort.survival("time", "cens").unwrap();
    assert_eq!(survival.event.iter().filter(|e| **e).count(), 299);
    assert_eq!((survival.time[0], survival.event[0]), (1814.0, true));
}

#[test]
fn gse7390_reads_with_its_76_probes_and_6_clinical_columns() {
    let Some(path) = dataset("breast_cancer_GSE7390-metastasis.arff") else {
        return;
    };
    let cohort = read_cohort(&path).unwrap();
    assert_eq!(cohort.rows, 198);
    assert_eq!(cohort.columns.len(), 82);
    let survival = cohort.survival("t.tdm", "e.tdm").unwrap();
    assert_eq!(survival.event.iter().filter(|e| **e).count(), 51);
}

#[test]
fn csv_columns_are_typed_and_missing_values_kept_as_missing() {
    let (_dir, path) =
        csv("id,age,er,time,event\n1,61,pos,120,1\n2,NA,neg,300,0\n3,47,,45.5,yes\n");
    let cohort = read_cohort(&path).unwrap();
    assert_eq!(cohort.rows, 3);
    assert_eq!(
        cohort.column("age").unwrap().values,
        Values::Numeric(vec![Some(61.0), None, Some(47.0)])
    );
    assert_eq!(
        cohort.column("er").unwrap().values,
        Values::Categorical {
            levels: vec!["pos".into(), "neg".into()],
            codes: vec![Some(0), Some(1), None],
        }
    );
    // 1, 0 and yes in one column: categorical, read as event indicators by their meaning.
    let survival = cohort.survival("time", "event").unwrap();
    assert_eq!(survival.event, [true, false, true]);
}

#[test]
fn bad_cohorts_are_refused_naming_row_and_column() {
    let cases = [
        (
            "time,event\n10,1\n20,0\n",
            "age",
            "no column `age` (columns: time, event)",
        ),
        (
            "time,event\n10,1\nabc,0\n",
            "",
            "row 2, column `time`: `abc` is not a number",
        ),
        (
            "time,event\n10,1\n,1\n",
            "",
            "row 2, column `time`: an event without a time",
        ),
        (
            "time,event\n10,1\n-5,0\n",
            "",
            "row 2, column `time`: -5 is not a positive time",
        ),
        (
            "time,event\n10,1\n20,2\n",
            "",
            "row 2, column `event`: 2 is not 0 or 1",
        ),
        (
            "time,event\n10,0\n20,0\n",
            "",
            "no row has an event in `event`",
        ),
        ("time,event\n10,1\n20,0,7\n", "", "line 3"),
        ("time,time\n10,1\n", "", "named twice"),
        ("time,event\n", "", "no rows"),
    ];
    for (text, column, expected) in cases {
        let (_dir, path) = csv(text);
        let error = read_cohort(&path)
            .and_then(|cohort| {
                if !column.is_empty() {
                    cohort.column(column)?;
                }
                cohort.survival("time", "event").map(|_| ())
            })
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{text:?}: {error}");
        assert!(error.contains("cohort.csv"), "the file is named: {error}");
    }
    let error = read_cohort(Path::new("cohort.xlsx"))
        .unwrap_err()
        .to_string();
    assert!(error.contains(".csv or .arff"), "{error}");
}

#[test]
fn malformed_arff_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.arff");
    std::fs::write(
        &path,
        "@relation x\n@attribute grade {'I','II'}\n@attribute time numeric\n@data\n'I',10\n'IV',20\n",
    )
    .unwrap();
    let error = read_cohort(&path).unwrap_err().to_string();
    assert!(
        error.contains("row 2, column `grade`: `IV` is not one of its levels"),
        "{error}"
    );
    std::fs::write(&path, "@relation x\n@attribute a string\n@data\n").unwrap();
    let error = read_cohort(&path).unwrap_err().to_string();
    assert!(
        error.contains("line 2") && error.contains("string"),
        "{error}"
    );
}
