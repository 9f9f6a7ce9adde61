//! A cohort file as the model sees it: which columns feed which modality, each column turned
//! into features (numeric: standardised with the training rows' mean and standard deviation;
//! categorical: one indicator per level; embedding components: as they are), and the rows
//! turned into `Inputs`. The plan is fitted on training rows only and stored in the bundle,
//! so a test cohort is prepared with the training statistics.
//!
//! Modalities: columns named `notes_<n>` and `imaging_<n>` are the notes and imaging
//! embeddings; every other column is clinical unless `--modality NAME=COL,…` says otherwise
//! (a name ending in `*` takes every column with that prefix).

use crate::cohort::{Cohort, CohortError, Column, Values};
use crate::features::Modality;
use crate::fusion::{
    BINS, Bins, Feature, FeatureLayout, Inputs, ModalityKind, ModalityLayout, Projection, Rng,
    Seen, Source,
};

/// Which columns the model uses, and how.
#[derive(Debug, Clone, Default)]
pub struct ColumnRoles {
    pub time: String,
    pub event: String,
    /// Binary column of urgent findings, for the triage head.
    pub triage: Option<String>,
    /// Patient identifier (one row per patient; not a feature).
    pub patient: Option<String>,
    /// Columns that are not features (other outcomes, identifiers, subgroup labels…).
    pub exclude: Vec<String>,
    /// Explicit modality assignments: (modality, column names or `prefix*`).
    pub modalities: Vec<(Modality, Vec<String>)>,
    /// Only this modality's columns are features (a single-modality model).
    pub only: Option<Modality>,
    /// Principal components an embedding is reduced to (0: the raw components).
    pub embedding_components: usize,
}

impl ColumnRoles {
    fn is_feature(&self, column: &str) -> bool {
        self.only.is_none_or(|m| self.modality_of(column) == m)
            && column != self.time
            && column != self.event
            && self.triage.as_deref() != Some(column)
            && self.patient.as_deref() != Some(column)
            && !self
                .exclude
                .iter()
                .any(|pattern| matches_pattern(pattern, column))
    }

    pub fn modality_of(&self, column: &str) -> Modality {
        let matches = |pattern: &String| matches_pattern(pattern, column);
        if let Some((modality, _)) = self
            .modalities
            .iter()
            .find(|(_, patterns)| patterns.iter().any(matches))
        {
            return *modality;
        }
        let embedding = |prefix: &str| {
            column
                .strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        if embedding("notes_") {
            Modality::Notes
        } else if embedding("imaging_") {
            Modality::Imaging
        } else {
            Modality::Clinical
        }
    }

    /// Every named column must exist; every explicit pattern must match one.
    pub fn check(&self, cohort: &Cohort) -> Result<(), CohortError> {
        for column in [&self.time, &self.event]
            .into_iter()
            .chain(self.triage.as_ref())
            .chain(self.patient.as_ref())
        {
            cohort.column(column)?;
        }
        let patterns = self
            .exclude
            .iter()
            .chain(self.modalities.iter().flat_map(|(_, p)| p));
        for pattern in patterns {
            if !cohort
                .columns
                .iter()
                .any(|c| matches_pattern(pattern, &c.name))
            {
                cohort.column(pattern)?;
            }
        }
        Ok(())
    }
}

/// A column name, or a prefix ending in `*`.
fn matches_pattern(pattern: &str, column: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => column.starts_with(prefix),
        None => pattern == column,
    }
}

/// The first row with no modality at all, by the rules `Inputs` applies (a tabular modality
/// is there when any of its columns has a value, an embedding when all of them have), read
/// straight from the columns: no layout, statistics or projection is fitted for the check.
pub fn first_row_without_features(cohort: &Cohort, roles: &ColumnRoles) -> Option<usize> {
    let mut groups: Vec<(Modality, Vec<&Column>)> = Vec::new();
    for column in cohort.columns.iter().filter(|c| roles.is_feature(&c.name)) {
        let modality = roles.modality_of(&column.name);
        match groups.iter_mut().find(|(m, _)| *m == modality) {
            Some((_, columns)) => columns.push(column),
            None => groups.push((modality, vec![column])),
        }
    }
    let known = |column: &Column, row: usize| match &column.values {
        Values::Numeric(v) => v[row].is_some(),
        Values::Categorical { codes, .. } => codes[row].is_some(),
    };
    (0..cohort.rows).find(|&row| {
        !groups
            .iter()
            .any(|(modality, columns)| match ModalityKind::of(*modality) {
                ModalityKind::Tabular => columns.iter().any(|c| known(c, row)),
                ModalityKind::Embedding => columns.iter().all(|c| known(c, row)),
            })
    })
}

/// The layout of a cohort's features, with statistics from `rows` (the training rows).
pub fn plan_layout(
    cohort: &Cohort,
    roles: &ColumnRoles,
    rows: &[usize],
) -> Result<FeatureLayout, CohortError> {
    roles.check(cohort)?;
    let mut modalities: Vec<ModalityLayout> = Vec::new();
    for column in cohort.columns.iter().filter(|c| roles.is_feature(&c.name)) {
        let modality = roles.modality_of(&column.name);
        let kind = ModalityKind::of(modality);
        let features = column_features(cohort, column, kind, rows)?;
        match modalities.iter_mut().find(|m| m.modality == modality) {
            Some(m) => m.features.extend(features),
            None => modalities.push(ModalityLayout {
                modality,
                kind,
                features,
                projection: None,
            }),
        }
    }
    if roles.embedding_components > 0 {
        for modality in modalities
            .iter_mut()
            .filter(|m| m.kind == ModalityKind::Embedding)
        {
            modality.projection =
                fit_projection(cohort, &modality.features, rows, roles.embedding_components)?;
        }
    }
    modalities.retain(|m| !m.features.is_empty());
    modalities.sort_by_key(|m| m.modality);
    if modalities.is_empty() {
        return Err(CohortError::Unusable {
            path: cohort.path.clone(),
            reason: "no feature columns beside the follow-up".into(),
        });
    }
    Ok(FeatureLayout { modalities })
}

fn column_features(
    cohort: &Cohort,
    column: &Column,
    kind: ModalityKind,
    rows: &[usize],
) -> Result<Vec<Feature>, CohortError> {
    match (&column.values, kind) {
        (Values::Numeric(_), ModalityKind::Embedding) => Ok(vec![Feature {
            name: column.name.clone(),
            source: Some(Source::Raw {
                column: column.name.clone(),
            }),
            seen: None,
        }]),
        (Values::Numeric(values), ModalityKind::Tabular) => {
            let mut known: Vec<f64> = rows.iter().filter_map(|&r| values[r]).collect();
            if known.is_empty() {
                return Err(CohortError::Unusable {
                    path: cohort.path.clone(),
                    reason: format!("column `{}` has no value in the training rows", column.name),
                });
            }
            let seen = Seen {
                rows: rows.len(),
                known: known.len(),
                range: Some((
                    known.iter().copied().fold(f64::INFINITY, f64::min),
                    known.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                )),
                count: None,
                bins: Bins::of(&known, BINS),
            };
            let log = skewed(&known);
            if log {
                known.iter_mut().for_each(|v| *v = v.ln_1p());
            }
            let (mean, sd) = mean_sd(&known);
            Ok(vec![Feature {
                name: column.name.clone(),
                source: Some(Source::Numeric {
                    column: column.name.clone(),
                    mean,
                    sd,
                    log,
                }),
                seen: Some(seen),
            }])
        }
        (Values::Categorical { levels, codes }, ModalityKind::Tabular) => {
            let known = rows.iter().filter(|&&r| codes[r].is_some()).count();
            Ok(levels
                .iter()
                .enumerate()
                .map(|(at, level)| Feature {
                    name: format!("{}={level}", column.name),
                    source: Some(Source::Level {
                        column: column.name.clone(),
                        level: level.clone(),
                    }),
                    seen: Some(Seen {
                        rows: rows.len(),
                        known,
                        range: None,
                        count: Some(rows.iter().filter(|&&r| codes[r] == Some(at)).count()),
                        bins: None,
                    }),
                })
                .collect())
        }
        (Values::Categorical { levels, codes }, ModalityKind::Embedding) => {
            let (row, value) = codes
                .iter()
                .enumerate()
                .find_map(|(row, c)| Some((row, levels[(*c)?].clone())))
                .unwrap_or((0, String::new()));
            Err(CohortError::BadValue {
                path: cohort.path.clone(),
                row: row + 1,
                column: column.name.clone(),
                reason: format!("`{value}` is not a number; embedding components must be numeric"),
            })
        }
    }
}

/// The principal components of an embedding over the training rows that have it (none when
/// fewer rows than components have it, or the embedding is no wider).
fn fit_projection(
    cohort: &Cohort,
    features: &[Feature],
    rows: &[usize],
    components: usize,
) -> Result<Option<Projection>, CohortError> {
    let columns: Vec<&Vec<Option<f64>>> = features
        .iter()
        .filter_map(|f| f.source.as_ref())
        .map(|s| match &cohort.column(s.column())?.values {
            Values::Numeric(v) => Ok(v),
            Values::Categorical { .. } => Err(CohortError::Unusable {
                path: cohort.path.clone(),
                reason: format!("embedding column `{}` is not numeric", s.column()),
            }),
        })
        .collect::<Result<_, _>>()?;
    let complete: Vec<usize> = rows
        .iter()
        .copied()
        .filter(|&r| columns.iter().all(|c| c[r].is_some()))
        .collect();
    if columns.len() <= components || complete.len() <= components {
        return Ok(None);
    }
    let mut data = Vec::with_capacity(complete.len() * columns.len());
    for &r in &complete {
        data.extend(columns.iter().map(|c| c[r].unwrap_or(0.0) as f32));
    }
    Projection::fit(&data, columns.len(), components, &mut Rng::derive(0, 40))
        .map(Some)
        .map_err(|e| CohortError::Unusable {
            path: cohort.path.clone(),
            reason: format!("principal components of the embedding: {e}"),
        })
}

/// Mean and sample standard deviation (1 for a constant column, which carries no
/// information but must not divide by zero).
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var =
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len().max(2) - 1) as f64;
    (mean, if var > 0.0 { var.sqrt() } else { 1.0 })
}

/// Non-negative with a long right tail (sample skewness above 2): counts, concentrations.
/// Such columns enter the model as log(1 + value), so that a few extreme values do not
/// dominate the standardised scale.
fn skewed(values: &[f64]) -> bool {
    if values.len() < 3 || values.iter().any(|&v| v < 0.0) {
        return false;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let m2 = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let m3 = values.iter().map(|v| (v - mean).powi(3)).sum::<f64>() / n;
    m2 > 0.0 && m3 / m2.powf(1.5) > 1.0
}

/// The model inputs of `rows` of a cohort, prepared as `layout` says. A level not seen in
/// training is unknown for that row (counted in the returned number).
pub fn cohort_inputs(
    cohort: &Cohort,
    layout: &FeatureLayout,
    rows: &[usize],
) -> Result<(Inputs, usize), CohortError> {
    let mut inputs = Inputs::empty(layout);
    let mut unseen = 0;
    // Resolve columns once.
    let mut columns: Vec<Vec<(&Column, &Source)>> = Vec::new();
    for modality in &layout.modalities {
        let mut resolved = Vec::with_capacity(modality.features.len());
        for feature in &modality.features {
            let source = feature.source.as_ref().ok_or_else(|| CohortError::Unusable {
                path: cohort.path.clone(),
                reason: format!(
                    "the model's feature `{}` is filled from FHIR only, not from a cohort column",
                    feature.name
                ),
            })?;
            resolved.push((cohort.column(source.column())?, source));
        }
        columns.push(resolved);
    }
    for &row in rows {
        let mut values = Vec::with_capacity(columns.len());
        for resolved in &columns {
            let mut modality = Vec::with_capacity(resolved.len());
            for (column, source) in resolved {
                let value = match (source, &column.values) {
                    (Source::Numeric { .. } | Source::Raw { .. }, Values::Numeric(v)) => {
                        v[row].and_then(|x| source.standardise(x)).map(|x| x as f32)
                    }
                    (Source::Level { level, .. }, Values::Categorical { levels, codes }) => {
                        match codes[row].map(|c| levels[c].as_str()) {
                            None => None,
                            Some(l) if l == level => Some(1.0),
                            Some(l) if layout_has_level(resolved, column, l) => Some(0.0),
                            Some(_) => {
                                unseen += 1;
                                None
                            }
                        }
                    }
                    (Source::Level { .. }, Values::Numeric(_)) => {
                        return Err(CohortError::BadValue {
                            path: cohort.path.clone(),
                            row: row + 1,
                            column: column.name.clone(),
                            reason: "the model was trained on this column as categorical; here it is numeric".into(),
                        });
                    }
                    (_, Values::Categorical { levels, codes }) => {
                        let value = codes[row].map(|c| levels[c].clone()).unwrap_or_default();
                        return Err(CohortError::BadValue {
                            path: cohort.path.clone(),
                            row: row + 1,
                            column: column.name.clone(),
                            reason: format!("`{value}` is not a number"),
                        });
                    }
                };
                modality.push((value.unwrap_or(0.0), value.is_some()));
            }
            values.push(modality);
        }
        inputs.push_row(layout, &values);
    }
    Ok((inputs, unseen))
}

fn layout_has_level(resolved: &[(&Column, &Source)], column: &Column, level: &str) -> bool {
    resolved.iter().any(|(c, s)| {
        c.name == column.name && matches!(s, Source::Level { level: l, .. } if l == level)
    })
}

/// The triage labels of `rows`: 0/1 or a two-level yes/no column; missing stays unknown.
pub fn triage_labels(
    cohort: &Cohort,
    column: &str,
    rows: &[usize],
) -> Result<Vec<Option<bool>>, CohortError> {
    let bad = |row: usize, reason: String| CohortError::BadValue {
        path: cohort.path.clone(),
        row: row + 1,
        column: column.to_owned(),
        reason,
    };
    let values = &cohort.column(column)?.values;
    rows.iter()
        .map(|&row| match values {
            Values::Numeric(v) => match v[row] {
                None => Ok(None),
                Some(0.0) => Ok(Some(false)),
                Some(1.0) => Ok(Some(true)),
                Some(x) => Err(bad(row, format!("{x} is not 0 or 1"))),
            },
            Values::Categorical { levels, codes } => match codes[row]
                .map(|c| levels[c].to_ascii_lowercase())
            {
                None => Ok(None),
                Some(l) if matches!(l.as_str(), "1" | "yes" | "true" | "urgent") => Ok(Some(true)),
                Some(l) if matches!(l.as_str(), "0" | "no" | "false" | "routine") => {
                    Ok(Some(false))
                }
                Some(l) => Err(bad(row, format!("`{l}` is not a yes/no label"))),
            },
        })
        .collect()
}

/// Every embedding modality must have the same width in the cohort as in the model.
pub fn check_embedding_widths(
    cohort: &Cohort,
    layout: &FeatureLayout,
    roles: &ColumnRoles,
) -> Result<(), CohortError> {
    for modality in layout
        .modalities
        .iter()
        .filter(|m| m.kind == ModalityKind::Embedding)
    {
        let found = cohort
            .columns
            .iter()
            .filter(|c| {
                roles.is_feature(&c.name) && roles.modality_of(&c.name) == modality.modality
            })
            .count();
        if found != modality.features.len() {
            return Err(CohortError::Unusable {
                path: cohort.path.clone(),
                reason: format!(
                    "the {} embedding has {found} columns here, the model takes {}",
                    modality.modality,
                    modality.features.len()
                ),
            });
        }
    }
    Ok(())
}
