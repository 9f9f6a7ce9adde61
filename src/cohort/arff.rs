//! ARFF (Weka's attribute-relation file format), as scikit-survival ships its datasets:
//! `@attribute NAME numeric|real|integer|{level,…}`, then `@data` rows of comma-separated
//! values, quoted with ' or ", `?` for missing; `%` starts a comment.

use std::path::Path;

use super::{Cohort, CohortError, Column, Values, is_missing};

enum Kind {
    Numeric,
    Nominal(Vec<String>),
}

pub(super) fn read(path: &Path) -> Result<Cohort, CohortError> {
    let text = std::fs::read_to_string(path).map_err(|e| CohortError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let malformed = |line: usize, reason: String| CohortError::Malformed {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut attributes: Vec<(String, Kind)> = Vec::new();
    let mut columns: Vec<Values> = Vec::new();
    let mut in_data = false;
    let mut rows = 0;
    for (index, raw) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('%') {
            continue;
        }
        if !in_data {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("@relation") {
                continue;
            }
            if lower.starts_with("@data") {
                in_data = true;
                columns = attributes
                    .iter()
                    .map(|(_, kind)| match kind {
                        Kind::Numeric => Values::Numeric(Vec::new()),
                        Kind::Nominal(levels) => Values::Categorical {
                            levels: levels.clone(),
                            codes: Vec::new(),
                        },
                    })
                    .collect();
                continue;
            }
            let Some(rest) = lower.strip_prefix("@attribute").map(|_| line[10..].trim()) else {
                return Err(malformed(line_number, format!("unexpected `{line}`")));
            };
            let (name, kind) = split_name(rest)
                .ok_or_else(|| malformed(line_number, "an @attribute without a type".into()))?;
            let kind = if kind.starts_with('{') && kind.ends_with('}') {
                Kind::Nominal(cells(&kind[1..kind.len() - 1]))
            } else if matches!(
                kind.to_ascii_lowercase().as_str(),
                "numeric" | "real" | "integer"
            ) {
                Kind::Numeric
            } else {
                return Err(malformed(
                    line_number,
                    format!(
                        "attribute `{name}` has type `{kind}`; only numeric and nominal are read"
                    ),
                ));
            };
            attributes.push((name, kind));
            continue;
        }
        let values = cells(line);
        if values.len() != attributes.len() {
            return Err(malformed(
                line_number,
                format!(
                    "{} values for {} attributes",
                    values.len(),
                    attributes.len()
                ),
            ));
        }
        for ((column, (name, _)), value) in columns.iter_mut().zip(&attributes).zip(&values) {
            let bad = |reason: String| CohortError::BadValue {
                path: path.to_path_buf(),
                row: rows + 1,
                column: name.clone(),
                reason,
            };
            match column {
                Values::Numeric(v) if is_missing(value) => v.push(None),
                Values::Numeric(v) => v.push(Some(
                    value
                        .parse::<f64>()
                        .map_err(|_| bad(format!("`{value}` is not a number")))?,
                )),
                Values::Categorical { codes, .. } if is_missing(value) => codes.push(None),
                Values::Categorical { levels, codes } => {
                    codes.push(Some(levels.iter().position(|l| l == value).ok_or_else(
                        || bad(format!("`{value}` is not one of its levels")),
                    )?))
                }
            }
        }
        rows += 1;
    }
    if !in_data {
        return Err(malformed(text.lines().count(), "no @data section".into()));
    }
    Ok(Cohort {
        path: path.to_path_buf(),
        rows,
        columns: attributes
            .into_iter()
            .zip(columns)
            .map(|((name, _), values)| Column { name, values })
            .collect(),
    })
}

/// The attribute's name (possibly quoted) and the rest of the line.
fn split_name(rest: &str) -> Option<(String, &str)> {
    let rest = rest.trim();
    if let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
        let end = rest[1..].find(quote)? + 1;
        return Some((rest[1..end].to_owned(), rest[end + 1..].trim()));
    }
    let end = rest.find(char::is_whitespace)?;
    Some((rest[..end].to_owned(), rest[end..].trim()))
}

/// Comma-separated values, each trimmed and unquoted.
fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, ',') => out.push(std::mem::take(&mut current).trim().to_owned()),
            (None, c) => current.push(c),
        }
    }
    out.push(current.trim().to_owned());
    out
}
