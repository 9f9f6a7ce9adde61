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
    assert!(error.contains(".csv, .parquet or .arff"), "{error}");
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

/// A Parquet file pyarrow wrote (scripts/reference-parquet); None when absent and not
/// required.
fn pyarrow_parquet(name: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/reference/parquet")
        .join(name);
    if !path.exists() {
        assert!(
            std::env::var_os("TEST_REQUIRE_DATA").is_none(),
            "{name} is missing: run scripts/reference-parquet"
        );
        return None;
    }
    Some(path)
}

#[test]
fn parquet_cohorts_written_by_pyarrow_are_read_with_their_types_and_nulls() {
    for name in ["cohort-snappy.parquet", "cohort-gzip.parquet"] {
        let Some(path) = pyarrow_parquet(name) else {
            return;
        };
        let cohort = read_cohort(&path).unwrap();
        assert_eq!(cohort.rows, 4, "{name}");
        let names: Vec<&str> = cohort.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["id", "time", "event", "age", "grade", "nodes", "score"]
        );
        let numeric = |column: &str| match &cohort.column(column).unwrap().values {
            Values::Numeric(v) => v.clone(),
            other => panic!("{column}: {other:?}"),
        };
        assert_eq!(
            numeric("time"),
            [Some(120.0), Some(365.0), Some(40.0), Some(900.0)]
        );
        assert_eq!(numeric("event"), [Some(1.0), Some(0.0), Some(1.0), None]);
        assert_eq!(numeric("age"), [Some(61.5), None, Some(47.25), Some(70.0)]);
        assert_eq!(numeric("score"), [Some(0.5), Some(1.5), None, Some(2.5)]);
        assert_eq!(
            cohort.column("grade").unwrap().values,
            Values::Categorical {
                levels: vec!["II".into(), "III".into()],
                codes: vec![Some(0), Some(1), None, Some(0)],
            }
        );
        // The follow-up check applies as to any cohort: row 4 has no event indicator.
        let err = cohort.survival("time", "event").unwrap_err().to_string();
        assert!(
            err.contains("row 4") && err.contains("no event indicator"),
            "{err}"
        );
    }
}

#[test]
fn parquet_files_the_reader_cannot_take_are_refused_by_name() {
    let (Some(zstd), Some(dated)) = (
        pyarrow_parquet("cohort-zstd.parquet"),
        pyarrow_parquet("cohort-dated.parquet"),
    ) else {
        return;
    };
    let err = read_cohort(&zstd).unwrap_err().to_string();
    assert!(err.to_ascii_lowercase().contains("zstd"), "{err}");
    let err = read_cohort(&dated).unwrap_err().to_string();
    assert!(
        err.contains("`diagnosed`") && err.contains("timestamp"),
        "{err}"
    );
    let err = read_cohort(&zstd.with_file_name("missing.parquet")).unwrap_err();
    assert!(matches!(err, CohortError::Unreadable { .. }));
}
