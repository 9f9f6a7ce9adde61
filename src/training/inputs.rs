//! Training with an input spec (`train --inputs`): the spec says where in FHIR each cohort
//! column is found, so that the model trained on the cohort can be served from FHIR data. The
//! spec decides which columns are features and the modality of each; before any training,
//! every column it fills must be in the cohort with the same kind (numbers or levels), and
//! every level the cohort has must have FHIR codes in the spec. A numeric column the spec reads
//! as a status or a range (a receptor level, a node count) is first recoded the way the
//! service will read charts: positive/negative at the spec's first threshold, the count's range.

use std::collections::BTreeMap;

use super::dataset::ColumnRoles;
use crate::cohort::{Cohort, CohortError, Values};
use crate::features::builder::spec_features;
use crate::features::{InputSpec, Modality};

/// A cohort column as the spec fills it: its modality and, for a categorical one, its levels.
struct SpecColumn {
    modality: Modality,
    levels: Option<Vec<String>>,
}

/// The columns `spec` fills, by name. A feature `col=level` is a level of column `col`.
fn spec_columns(spec: &InputSpec) -> BTreeMap<String, SpecColumn> {
    let mut columns: BTreeMap<String, SpecColumn> = BTreeMap::new();
    for (modality, feature) in spec_features(spec) {
        let (name, level) = match feature.split_once('=') {
            Some((name, level)) => (name.to_owned(), Some(level.to_owned())),
            None => (feature, None),
        };
        let column = columns.entry(name).or_insert(SpecColumn {
            modality,
            levels: None,
        });
        if let Some(level) = level {
            column.levels.get_or_insert_with(Vec::new).push(level);
        }
    }
    columns
}

/// Recodes the numeric columns that `spec` reads as statuses (positive at or above the first
/// threshold, which is in the cohort's unit) or as ranges (the level whose bounds hold the
/// count) into categorical columns; a count in no range is an error naming the row.
pub fn recode_for_spec(cohort: &mut Cohort, spec: &InputSpec) -> Result<(), CohortError> {
    let Some(clinical) = &spec.clinical else {
        return Ok(());
    };
    let path = cohort.path.clone();
    for column in &mut cohort.columns {
        let Values::Numeric(values) = &column.values else {
            continue;
        };
        if let Some(status) = clinical.statuses.iter().find(|s| s.name == column.name) {
            let Some(threshold) = status.positive_at.first() else {
                continue;
            };
            let codes = values
                .iter()
                .map(|v| v.map(|v| usize::from(v >= threshold.value)))
                .collect();
            column.values = Values::Categorical {
                levels: vec!["negative".into(), "positive".into()],
                codes,
            };
        } else if let Some(range) = clinical.ranges.iter().find(|r| r.name == column.name) {
            let codes = values
                .iter()
                .enumerate()
                .map(|(row, v)| match v {
                    None => Ok(None),
                    Some(v) => range
                        .levels
                        .iter()
                        .position(|l| l.contains(*v))
                        .map(Some)
                        .ok_or_else(|| CohortError::BadValue {
                            path: path.clone(),
                            row: row + 1,
                            column: column.name.clone(),
                            reason: format!("{v} lies in none of the spec's ranges"),
                        }),
                })
                .collect::<Result<_, _>>()?;
            column.values = Values::Categorical {
                levels: range.levels.iter().map(|l| l.name.clone()).collect(),
                codes,
            };
        }
    }
    Ok(())
}

/// `roles` with the features and modalities `spec` gives; an error naming the column when the
/// cohort does not fit the spec.
pub fn roles_for_spec(
    cohort: &Cohort,
    roles: &ColumnRoles,
    spec: &InputSpec,
) -> Result<ColumnRoles, CohortError> {
    let unusable = |reason: String| CohortError::Unusable {
        path: cohort.path.clone(),
        reason: format!("the input spec does not fit the cohort: {reason}"),
    };
    spec.validate().map_err(|e| unusable(e.to_string()))?;
    let columns = spec_columns(spec);
    for (name, wanted) in &columns {
        let column = cohort
            .columns
            .iter()
            .find(|c| c.name == *name)
            .ok_or_else(|| {
                unusable(format!(
                    "it fills the column `{name}`, which the cohort lacks"
                ))
            })?;
        match (&column.values, &wanted.levels) {
            (Values::Numeric(_), None) => {}
            (Values::Categorical { levels, codes }, Some(known)) => {
                let used = codes.iter().flatten().map(|&c| &levels[c]);
                for level in used {
                    if !known.contains(level) {
                        return Err(unusable(format!(
                            "the column `{name}` has the level `{level}`, for which the spec gives no FHIR codes (it gives {})",
                            known.join(", ")
                        )));
                    }
                }
            }
            (Values::Numeric(_), Some(_)) => {
                return Err(unusable(format!(
                    "the spec fills `{name}` with levels; the cohort's column is numeric"
                )));
            }
            (Values::Categorical { .. }, None) => {
                return Err(unusable(format!(
                    "the spec fills `{name}` with numbers; the cohort's column is categorical"
                )));
            }
        }
    }
    let mut roles = roles.clone();
    roles.only = None;
    roles.exclude = cohort
        .columns
        .iter()
        .map(|c| c.name.clone())
        .filter(|c| !columns.contains_key(c))
        .collect();
    roles.modalities = Modality::ALL
        .into_iter()
        .map(|modality| {
            let names = columns
                .iter()
                .filter(|(_, c)| c.modality == modality)
                .map(|(name, _)| name.clone())
                .collect::<Vec<_>>();
            (modality, names)
        })
        .filter(|(_, names)| !names.is_empty())
        .collect();
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cohort::Column;

    #[test]
    fn levels_and_counts_are_recoded_as_the_spec_reads_charts() {
        let spec: InputSpec = toml::from_str(
            r#"
            [[clinical.statuses]]
            name = "er"
            results = "https://prognostics.example.org/fhir/ValueSet/estrogen-receptor-results"
            positive_at = [{ value = 10, unit = "fmol/mg" }]
            [[clinical.ranges]]
            name = "nodes"
            counts = ["21893-3"]
            levels = [{ name = "1-3", min = 1, max = 3 }, { name = "4+", min = 4 }]
            "#,
        )
        .unwrap();
        let numeric = |name: &str, values: &[Option<f64>]| Column {
            name: name.into(),
            values: Values::Numeric(values.to_vec()),
        };
        let mut cohort = Cohort {
            path: "c.csv".into(),
            rows: 3,
            columns: vec![
                numeric("er", &[Some(9.9), Some(10.0), None]),
                numeric("nodes", &[Some(1.0), Some(12.0), Some(3.0)]),
            ],
        };
        recode_for_spec(&mut cohort, &spec).unwrap();
        assert_eq!(
            cohort.columns[0].values,
            Values::Categorical {
                levels: vec!["negative".into(), "positive".into()],
                codes: vec![Some(0), Some(1), None],
            }
        );
        assert_eq!(
            cohort.columns[1].values,
            Values::Categorical {
                levels: vec!["1-3".into(), "4+".into()],
                codes: vec![Some(0), Some(1), Some(0)],
            }
        );
        // A count in no range is refused, naming the row.
        cohort.columns[1] = numeric("nodes", &[Some(1.0), Some(0.0), Some(3.0)]);
        let e = recode_for_spec(&mut cohort, &spec).unwrap_err().to_string();
        assert!(
            e.contains("row 2") && e.contains("none of the spec's ranges"),
            "{e}"
        );
    }
}
