//! Training with an input spec (`train --inputs`): the spec says where in FHIR each cohort
//! column is found, so that the model trained on the cohort can be served from FHIR data. The
//! spec decides which columns are features and the modality of each; before any training,
//! every column it fills must be in the cohort with the same kind (numbers or levels), and
//! every level the cohort has must have FHIR codes in the spec.

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
