//! What the fusion network takes in: the modalities it was trained on, each with its features
//! in order, and where each feature comes from in a cohort file (so that a test cohort is
//! prepared exactly as the training cohort was). A batch of patients is `Inputs`: per modality
//! the values, a mask bit per value (known or not) and whether the modality is present at all.
//!
//! A tabular modality (clinical, labs, genomics) enters the network as its values times their
//! mask, beside the mask itself, so "unknown" is not confused with "zero". An embedding
//! modality (notes, imaging) is whole or absent.

use serde::{Deserialize, Serialize};

use super::pca::Projection;
use crate::features::{FeatureSet, Modality};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModalityKind {
    Tabular,
    Embedding,
}

impl ModalityKind {
    pub fn of(modality: Modality) -> Self {
        match modality {
            Modality::Notes | Modality::Imaging => ModalityKind::Embedding,
            _ => ModalityKind::Tabular,
        }
    }
}

/// How a cohort column becomes a feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// `(value − mean) / sd` of a numeric column (training rows' statistics), after
    /// `log(1 + value)` when `log` (for skewed non-negative columns such as counts and
    /// receptor concentrations).
    Numeric {
        column: String,
        mean: f64,
        sd: f64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        log: bool,
    },
    /// 1 where a categorical column has this level, 0 where it has another.
    Level { column: String, level: String },
    /// An embedding component, as it is.
    Raw { column: String },
}

impl Source {
    /// A numeric column's value as the model takes it.
    pub fn standardise(&self, value: f64) -> Option<f64> {
        match self {
            Source::Numeric { mean, sd, log, .. } => {
                let v = if *log { value.max(0.0).ln_1p() } else { value };
                Some((v - mean) / sd)
            }
            Source::Raw { .. } => Some(value),
            Source::Level { .. } => None,
        }
    }

    pub fn column(&self) -> &str {
        match self {
            Source::Numeric { column, .. }
            | Source::Level { column, .. }
            | Source::Raw { column } => column,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// What the training rows held (for a tabular feature): to tell a patient unlike them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<Seen>,
}

/// A tabular feature in the training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub rows: usize,
    /// Rows where it was known.
    pub known: usize,
    /// A numeric feature's smallest and largest value, as the cohort recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<(f64, f64)>,
    /// A level: the rows that had it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// A numeric feature's distribution over the rows that had it, as recorded (bundles
    /// trained before it was kept have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<super::reference::Bins>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModalityLayout {
    pub modality: Modality,
    pub kind: ModalityKind,
    pub features: Vec<Feature>,
    /// For an embedding: the principal components the network takes instead of the raw
    /// components (fitted on the training patients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<Projection>,
}

impl ModalityLayout {
    /// The width of the network's input for this modality.
    pub fn input_width(&self) -> usize {
        match self.kind {
            ModalityKind::Tabular => 2 * self.features.len(),
            ModalityKind::Embedding => self
                .projection
                .as_ref()
                .map_or(self.features.len(), |p| p.count),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureLayout {
    pub modalities: Vec<ModalityLayout>,
}

impl FeatureLayout {
    pub fn modality_names(&self) -> Vec<Modality> {
        self.modalities.iter().map(|m| m.modality).collect()
    }

    pub fn feature_count(&self) -> usize {
        self.modalities.iter().map(|m| m.features.len()).sum()
    }
}

/// One modality's inputs for a batch, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct ModalityInputs {
    pub values: Vec<f32>,
    pub mask: Vec<f32>,
    pub present: Vec<bool>,
}

/// A batch of patients, in the layout's modality order.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    pub rows: usize,
    pub modalities: Vec<ModalityInputs>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error(
        "the features built for patient {patient} lack `{feature}` ({modality}), which the model takes"
    )]
    MissingFeature {
        patient: String,
        modality: Modality,
        feature: String,
    },
}

impl Inputs {
    /// An empty batch for `layout`, to be filled row by row with `push_row`.
    pub fn empty(layout: &FeatureLayout) -> Self {
        Self {
            rows: 0,
            modalities: layout
                .modalities
                .iter()
                .map(|_| ModalityInputs {
                    values: Vec::new(),
                    mask: Vec::new(),
                    present: Vec::new(),
                })
                .collect(),
        }
    }

    /// Appends one patient: per modality, its (value, known) pairs in layout order. An
    /// embedding missing any component counts as absent.
    pub fn push_row(&mut self, layout: &FeatureLayout, row: &[Vec<(f32, bool)>]) {
        for ((inputs, modality), values) in
            self.modalities.iter_mut().zip(&layout.modalities).zip(row)
        {
            let present = match modality.kind {
                ModalityKind::Tabular => values.iter().any(|(_, known)| *known),
                ModalityKind::Embedding => {
                    !values.is_empty() && values.iter().all(|(_, known)| *known)
                }
            };
            for (value, known) in values {
                let keep = *known && present && value.is_finite();
                inputs.values.push(if keep { *value } else { 0.0 });
                inputs.mask.push(if keep { 1.0 } else { 0.0 });
            }
            inputs.present.push(present);
        }
        self.rows += 1;
    }

    /// The inputs of patients whose features the service built (`build_features`): each
    /// feature found by name, whichever modality the input spec filed it under, and
    /// standardised as the layout's statistics say (the builder gives values as the cohort had
    /// them).
    pub fn from_feature_sets(
        layout: &FeatureLayout,
        sets: &[FeatureSet],
    ) -> Result<Self, LayoutError> {
        let mut inputs = Self::empty(layout);
        for set in sets {
            let built = set.by_name();
            let mut row = Vec::with_capacity(layout.modalities.len());
            for modality in &layout.modalities {
                let mut values = Vec::with_capacity(modality.features.len());
                for feature in &modality.features {
                    let (value, known) =
                        built.get(feature.name.as_str()).copied().ok_or_else(|| {
                            LayoutError::MissingFeature {
                                patient: set.patient.clone(),
                                modality: modality.modality,
                                feature: feature.name.clone(),
                            }
                        })?;
                    let value = match &feature.source {
                        Some(source) => source
                            .standardise(f64::from(value))
                            .map_or(value, |v| v as f32),
                        None => value,
                    };
                    values.push((value, known));
                }
                row.push(values);
            }
            inputs.push_row(layout, &row);
        }
        Ok(inputs)
    }

    /// The given rows, in that order.
    pub fn select(&self, rows: &[usize]) -> Self {
        let modalities = self
            .modalities
            .iter()
            .map(|m| {
                let width = m.values.len().checked_div(self.rows).unwrap_or(0);
                let mut out = ModalityInputs {
                    values: Vec::with_capacity(rows.len() * width),
                    mask: Vec::with_capacity(rows.len() * width),
                    present: Vec::with_capacity(rows.len()),
                };
                for &row in rows {
                    out.values
                        .extend_from_slice(&m.values[row * width..(row + 1) * width]);
                    out.mask
                        .extend_from_slice(&m.mask[row * width..(row + 1) * width]);
                    out.present.push(m.present[row]);
                }
                out
            })
            .collect();
        Self {
            rows: rows.len(),
            modalities,
        }
    }

    /// The same patients with one modality taken away (as if it had not been recorded).
    pub fn without(&self, modality: usize) -> Self {
        let mut out = self.clone();
        if let Some(m) = out.modalities.get_mut(modality) {
            m.values.iter_mut().for_each(|v| *v = 0.0);
            m.mask.iter_mut().for_each(|v| *v = 0.0);
            m.present.iter_mut().for_each(|p| *p = false);
        }
        out
    }

    /// Whether row `row` has any modality at all (a prediction needs one).
    pub fn any_present(&self, row: usize) -> bool {
        self.modalities.iter().any(|m| m.present[row])
    }
}
