//! CSV cohorts: a header row naming the columns, then one row per patient. A column whose
//! every present value is a number is numeric; any other is categorical.

use std::path::Path;

use super::{Cohort, CohortError, Column, Values, is_missing};

pub(super) fn read(path: &Path) -> Result<Cohort, CohortError> {
    let unreadable = |reason: String| CohortError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| unreadable(e.to_string()))?;
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| unreadable(e.to_string()))?
        .iter()
        .map(str::to_owned)
        .collect();
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() || names[..i].contains(name) {
            return Err(CohortError::Malformed {
                path: path.to_path_buf(),
                line: 1,
                reason: format!("column {} is unnamed or named twice (`{name}`)", i + 1),
            });
        }
    }
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| CohortError::Malformed {
            path: path.to_path_buf(),
            line: e.position().map_or(row + 2, |p| p.line() as usize),
            reason: e.to_string(),
        })?;
        for (column, cell) in cells.iter_mut().zip(record.iter()) {
            column.push(cell.to_owned());
        }
    }
    let rows = cells.first().map_or(0, Vec::len);
    let columns = names
        .into_iter()
        .zip(cells)
        .map(|(name, cells)| Column {
            name,
            values: typed(&cells),
        })
        .collect();
    Ok(Cohort {
        path: path.to_path_buf(),
        rows,
        columns,
    })
}

fn typed(cells: &[String]) -> Values {
    let numbers: Option<Vec<Option<f64>>> = cells
        .iter()
        .map(|c| {
            if is_missing(c) {
                Some(None)
            } else {
                c.parse::<f64>().ok().filter(|v| v.is_finite()).map(Some)
            }
        })
        .collect();
    if let Some(numbers) = numbers {
        return Values::Numeric(numbers);
    }
    let mut levels: Vec<String> = Vec::new();
    let codes = cells
        .iter()
        .map(|c| {
            if is_missing(c) {
                return None;
            }
            Some(match levels.iter().position(|l| l == c) {
                Some(i) => i,
                None => {
                    levels.push(c.clone());
                    levels.len() - 1
                }
            })
        })
        .collect();
    Values::Categorical { levels, codes }
}

/// Writes columns of equal length as CSV (missing values as empty cells), the format `read`
/// takes back.
pub fn write(path: &Path, columns: &[Column]) -> Result<(), CohortError> {
    let unwritable = |e: csv::Error| CohortError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut writer = csv::Writer::from_path(path).map_err(unwritable)?;
    writer
        .write_record(columns.iter().map(|c| c.name.as_str()))
        .map_err(unwritable)?;
    let rows = columns.first().map_or(0, |c| match &c.values {
        Values::Numeric(v) => v.len(),
        Values::Categorical { codes, .. } => codes.len(),
    });
    let mut record = Vec::with_capacity(columns.len());
    for row in 0..rows {
        record.clear();
        for column in columns {
            record.push(match &column.values {
                Values::Numeric(v) => v[row].map(|x| x.to_string()).unwrap_or_default(),
                Values::Categorical { levels, codes } => {
                    codes[row].map(|c| levels[c].clone()).unwrap_or_default()
                }
            });
        }
        writer.write_record(&record).map_err(unwritable)?;
    }
    writer.flush().map_err(|e| CohortError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
