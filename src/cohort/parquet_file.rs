//! Parquet cohorts (what pandas, polars and Spark write): one row per patient, flat columns.
//! Integer, floating-point, decimal and boolean columns are numeric (booleans 0/1); string
//! columns are categorical; nulls are missing. Nested, binary and date/time columns are
//! refused with their name. Snappy- and gzip-compressed files are read (pandas' and Spark's
//! defaults); other codecs are refused by name.

use std::fs::File;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use super::{Cohort, CohortError, Column, Values};

enum Builder {
    Numeric(Vec<Option<f64>>),
    Categorical {
        levels: Vec<String>,
        codes: Vec<Option<usize>>,
    },
    /// Only nulls so far (the type is decided by the first value).
    Empty(usize),
}

pub(super) fn read(path: &Path) -> Result<Cohort, CohortError> {
    let unreadable = |reason: String| CohortError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| unreadable(format!("not a Parquet file: {e}")))?;
    let names: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    let mut builders: Vec<Builder> = names.iter().map(|_| Builder::Empty(0)).collect();
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| unreadable(e.to_string()))?;
    let mut count = 0;
    for (row_index, row) in rows.enumerate() {
        let row = row.map_err(|e| unreadable(format!("row {}: {e}", row_index + 1)))?;
        for (at, (name, field)) in row.get_column_iter().enumerate() {
            let bad = |reason: String| CohortError::BadValue {
                path: path.to_path_buf(),
                row: row_index + 1,
                column: name.clone(),
                reason,
            };
            let builder = builders.get_mut(at).ok_or_else(|| {
                unreadable(format!(
                    "row {} has more columns than the schema",
                    row_index + 1
                ))
            })?;
            push(builder, field).map_err(bad)?;
        }
        count += 1;
    }
    let columns = names
        .into_iter()
        .zip(builders)
        .map(|(name, builder)| Column {
            name,
            values: match builder {
                Builder::Numeric(v) => Values::Numeric(v),
                Builder::Categorical { levels, codes } => Values::Categorical { levels, codes },
                Builder::Empty(n) => Values::Numeric(vec![None; n]),
            },
        })
        .collect();
    Ok(Cohort {
        path: path.to_path_buf(),
        rows: count,
        columns,
    })
}

fn number(field: &Field) -> Option<f64> {
    Some(match field {
        Field::Bool(b) => f64::from(u8::from(*b)),
        Field::Byte(v) => f64::from(*v),
        Field::Short(v) => f64::from(*v),
        Field::Int(v) => f64::from(*v),
        Field::Long(v) => *v as f64,
        Field::UByte(v) => f64::from(*v),
        Field::UShort(v) => f64::from(*v),
        Field::UInt(v) => f64::from(*v),
        Field::ULong(v) => *v as f64,
        Field::Float(v) => f64::from(*v),
        Field::Double(v) => *v,
        // Half floats and decimals print their exact value.
        Field::Float16(_) | Field::Decimal(_) => field.to_string().parse().ok()?,
        _ => return None,
    })
}

fn push(builder: &mut Builder, field: &Field) -> Result<(), String> {
    if let Builder::Empty(n) = builder {
        let n = *n;
        match field {
            Field::Null => {
                *builder = Builder::Empty(n + 1);
                return Ok(());
            }
            Field::Str(_) => {
                *builder = Builder::Categorical {
                    levels: Vec::new(),
                    codes: vec![None; n],
                }
            }
            _ => *builder = Builder::Numeric(vec![None; n]),
        }
    }
    match (builder, field) {
        (Builder::Numeric(v), Field::Null) => v.push(None),
        (Builder::Categorical { codes, .. }, Field::Null) => codes.push(None),
        (Builder::Categorical { levels, codes }, Field::Str(s)) => {
            let code = match levels.iter().position(|l| l == s) {
                Some(code) => code,
                None => {
                    levels.push(s.clone());
                    levels.len() - 1
                }
            };
            codes.push(Some(code));
        }
        (Builder::Numeric(v), other) => match number(other) {
            Some(x) => v.push(Some(x).filter(|x| x.is_finite())),
            None => {
                return Err(format!(
                    "a {} value; cohort columns are numbers or text",
                    kind(other)
                ));
            }
        },
        (Builder::Categorical { .. }, other) => {
            return Err(format!("a {} value in a text column", kind(other)));
        }
        // Decided by the first non-null value above.
        (Builder::Empty(_), _) => {}
    }
    Ok(())
}

fn kind(field: &Field) -> &'static str {
    match field {
        Field::Bytes(_) => "binary",
        Field::Date(_) => "date",
        Field::TimeMillis(_) | Field::TimeMicros(_) => "time",
        Field::TimestampMillis(_) | Field::TimestampMicros(_) => "timestamp",
        Field::Group(_) => "nested group",
        Field::ListInternal(_) => "list",
        Field::MapInternal(_) => "map",
        Field::Str(_) => "text",
        _ => "numeric",
    }
}
