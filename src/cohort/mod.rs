//! Cohort files for training and evaluation: one row per patient, with a follow-up time, an
//! event indicator and features. Read from CSV (a header row; empty, `NA` and `?` are
//! missing), Parquet (nulls are missing) or ARFF (the format of scikit-survival's public
//! datasets), into typed columns:
//! numeric, or categorical with its levels. Everything wrong is refused before any training,
//! naming the file, the row and the column.

mod arff;
mod csv_file;
mod outcomes;
mod parquet_file;

pub use csv_file::write as write_csv;
pub use outcomes::{OutcomeFile, OutcomeFileError, OutcomeKind, OutcomeRow, read_outcome_file};

use std::path::{Path, PathBuf};

/// A column's values, one per row.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Numeric(Vec<Option<f64>>),
    /// Level index per row; levels in the order the file declares (ARFF) or first meets (CSV).
    Categorical {
        levels: Vec<String>,
        codes: Vec<Option<usize>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Values,
}

/// A cohort as read from its file.
#[derive(Debug, Clone)]
pub struct Cohort {
    pub path: PathBuf,
    pub rows: usize,
    pub columns: Vec<Column>,
}

/// Follow-up of every row: time (> 0) and whether the event was observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Survival {
    pub time: Vec<f64>,
    pub event: Vec<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum CohortError {
    #[error("{path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: cohort files are .csv, .parquet or .arff, not `{extension}`")]
    UnknownFormat { path: PathBuf, extension: String },
    #[error("{path}, line {line}: {reason}")]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: no column `{column}` (columns: {available})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: String,
    },
    #[error("{path}, row {row}, column `{column}`: {reason}")]
    BadValue {
        path: PathBuf,
        row: usize,
        column: String,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Unusable { path: PathBuf, reason: String },
}

/// Reads a cohort file by its extension.
pub fn read_cohort(path: &Path) -> Result<Cohort, CohortError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let cohort = match extension.as_str() {
        "csv" => csv_file::read(path)?,
        "arff" => arff::read(path)?,
        "parquet" | "pq" => parquet_file::read(path)?,
        _ => {
            return Err(CohortError::UnknownFormat {
                path: path.to_path_buf(),
                extension,
            });
        }
    };
    if cohort.rows == 0 {
        return Err(CohortError::Unusable {
            path: path.to_path_buf(),
            reason: "no rows".into(),
        });
    }
    Ok(cohort)
}

/// Whether a cell means "no value".
fn is_missing(cell: &str) -> bool {
    matches!(cell.trim(), "" | "?" | "NA" | "NaN" | "nan" | "null")
}

impl Cohort {
    pub fn column(&self, name: &str) -> Result<&Column, CohortError> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| CohortError::MissingColumn {
                path: self.path.clone(),
                column: name.to_owned(),
                available: self
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The follow-up: `time` numeric and positive on every row; `event` 0/1 (or a two-level
    /// categorical such as no/yes, false/true) on every row; at least one event.
    pub fn survival(&self, time: &str, event: &str) -> Result<Survival, CohortError> {
        let bad = |row: usize, column: &str, reason: String| CohortError::BadValue {
            path: self.path.clone(),
            row: row + 1,
            column: column.to_owned(),
            reason,
        };
        let times = match &self.column(time)?.values {
            Values::Numeric(times) => times,
            Values::Categorical { levels, codes } => {
                // Some value is not a number: name the first.
                let (row, value) = codes
                    .iter()
                    .enumerate()
                    .filter_map(|(row, c)| Some((row, levels[(*c)?].as_str())))
                    .find(|(_, v)| v.parse::<f64>().is_err())
                    .unwrap_or((0, ""));
                return Err(bad(
                    row,
                    time,
                    format!("`{value}` is not a number; the follow-up time must be numeric"),
                ));
            }
        };
        let events: Vec<Option<bool>> = match &self.column(event)?.values {
            Values::Numeric(v) => v
                .iter()
                .enumerate()
                .map(|(row, e)| match e {
                    None => Ok(None),
                    Some(x) if *x == 0.0 => Ok(Some(false)),
                    Some(x) if *x == 1.0 => Ok(Some(true)),
                    Some(x) => Err(bad(row, event, format!("{x} is not 0 or 1"))),
                })
                .collect::<Result<_, _>>()?,
            Values::Categorical { levels, codes } => {
                let observed = |level: &str| {
                    matches!(
                        level.to_ascii_lowercase().as_str(),
                        "1" | "yes" | "true" | "event" | "dead" | "died"
                    )
                };
                let unobserved = |level: &str| {
                    matches!(
                        level.to_ascii_lowercase().as_str(),
                        "0" | "no" | "false" | "censored" | "alive"
                    )
                };
                codes
                    .iter()
                    .enumerate()
                    .map(|(row, code)| match code.map(|c| levels[c].as_str()) {
                        None => Ok(None),
                        Some(l) if observed(l) => Ok(Some(true)),
                        Some(l) if unobserved(l) => Ok(Some(false)),
                        Some(l) => Err(bad(row, event, format!("`{l}` is not an event indicator"))),
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        let mut survival = Survival {
            time: Vec::with_capacity(self.rows),
            event: Vec::with_capacity(self.rows),
        };
        for (row, (t, e)) in times.iter().zip(&events).enumerate() {
            match (t, e) {
                (Some(t), Some(e)) if t.is_finite() && *t > 0.0 => {
                    survival.time.push(*t);
                    survival.event.push(*e);
                }
                (Some(t), Some(_)) => {
                    return Err(bad(row, time, format!("{t} is not a positive time")));
                }
                (None, Some(true)) => {
                    return Err(bad(row, time, "an event without a time".into()));
                }
                (None, _) => return Err(bad(row, time, "no follow-up time".into())),
                (Some(_), None) => return Err(bad(row, event, "no event indicator".into())),
            }
        }
        if !survival.event.contains(&true) {
            return Err(CohortError::Unusable {
                path: self.path.clone(),
                reason: format!("no row has an event in `{event}`: nothing to learn from"),
            });
        }
        Ok(survival)
    }
}

#[cfg(test)]
mod tests;
