//! What each model version was given, and how it compares with what it learnt from: how
//! often each input was missing from its assessments; and, from the inputs kept beside each
//! assessment ([`InputSnapshot`]), the population stability index of each tabular input and of
//! the model's risk against the bundle's training distributions, each input's missingness
//! against the training rows', how far each embedding moved from the training patients', and
//! the imaging acquisition mix.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{DicomUid, ResourceId, ResourceType};
use crate::features::FeatureSet;
use crate::fusion::{EmbeddingShift, ModalityKind, ModalityLayout, Model, Source, psi};
use crate::pipeline::{Pipeline, PipelineError};
use crate::telemetry::spawn_blocking_with_tracing;

/// How often each input was missing from one model version's assessments.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct InputMissingness {
    pub model: String,
    pub version: String,
    pub assessments: usize,
    /// Per input (as the model names it): the assessments it was missing from, and the rate.
    pub missing: BTreeMap<String, MissingRate>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MissingRate {
    pub count: usize,
    pub rate: f64,
}

impl Pipeline {
    /// The missingness of each input, per model version, over the assessments filed (from the
    /// explanation kept beside each).
    pub async fn input_missingness(&self) -> Result<Vec<InputMissingness>, PipelineError> {
        let mut by_model: BTreeMap<(String, String), InputMissingness> = BTreeMap::new();
        for content in self.store.all_assessment_views().await? {
            let Ok(view) =
                serde_json::from_str::<crate::report::risk_view::AssessmentView>(&content)
            else {
                continue;
            };
            let key = (view.model.name.clone(), view.model.version.clone());
            let entry = by_model.entry(key).or_insert_with(|| InputMissingness {
                model: view.model.name.clone(),
                version: view.model.version.clone(),
                ..InputMissingness::default()
            });
            entry.assessments += 1;
            let mut seen: Vec<&str> = Vec::new();
            for m in &view.missing {
                let input = m.feature.split('=').next().unwrap_or(&m.feature);
                if !seen.contains(&input) {
                    seen.push(input);
                    entry.missing.entry(input.to_owned()).or_default().count += 1;
                }
            }
        }
        Ok(by_model
            .into_values()
            .map(|mut m| {
                let total = m.assessments.max(1) as f64;
                for rate in m.missing.values_mut() {
                    rate.rate = rate.count as f64 / total;
                }
                m
            })
            .collect())
    }
}

/// What one model version was given for one assessment, kept for drift (`model_inputs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InputSnapshot {
    pub log_hazard_ratio: f64,
    /// Numeric inputs as recorded, by cohort column.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub numbers: BTreeMap<String, f64>,
    /// Categorical inputs' levels, by cohort column.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub levels: BTreeMap<String, String>,
    /// Tabular inputs (cohort columns) and embedding modalities not on record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Per embedding modality, its whitened principal-component scores.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub embeddings: BTreeMap<String, Vec<f32>>,
    /// The imaging study's acquisition (DICOM header), when one was used.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub acquisition: BTreeMap<String, String>,
}

impl InputSnapshot {
    /// The inputs `features` gave `model`, by the columns of its layout.
    pub fn of(model: &Model, features: &FeatureSet, log_hazard_ratio: f64) -> Self {
        let mut snapshot = Self {
            log_hazard_ratio,
            ..Self::default()
        };
        let built = features.by_name();
        for modality in &model.manifest.layout.modalities {
            match modality.kind {
                ModalityKind::Tabular => {
                    let mut columns: Vec<&str> = Vec::new();
                    for feature in &modality.features {
                        let Some(source) = &feature.source else {
                            continue;
                        };
                        let column = source.column();
                        if !columns.contains(&column) {
                            columns.push(column);
                        }
                        let Some((value, true)) = built.get(feature.name.as_str()).copied() else {
                            continue;
                        };
                        match source {
                            Source::Numeric { .. } | Source::Raw { .. } => {
                                snapshot.numbers.insert(column.to_owned(), f64::from(value));
                            }
                            Source::Level { level, .. } if value > 0.5 => {
                                snapshot.levels.insert(column.to_owned(), level.clone());
                            }
                            Source::Level { .. } => {}
                        }
                    }
                    for column in columns {
                        let known = snapshot.numbers.contains_key(column)
                            || snapshot.levels.contains_key(column);
                        if !known {
                            snapshot.missing.push(column.to_owned());
                        }
                    }
                }
                ModalityKind::Embedding => {
                    let row: Option<Vec<f32>> = modality
                        .features
                        .iter()
                        .map(|f| match built.get(f.name.as_str()) {
                            Some((v, true)) => Some(*v),
                            _ => None,
                        })
                        .collect();
                    let scores = match (&modality.projection, row) {
                        (Some(p), Some(row)) => p.scores(&row),
                        _ => None,
                    };
                    match scores {
                        Some(scores) => {
                            snapshot
                                .embeddings
                                .insert(modality.modality.to_string(), scores);
                        }
                        None => snapshot.missing.push(modality.modality.to_string()),
                    }
                }
            }
        }
        snapshot
    }
}

/// How one model version's recent inputs and outputs compare with its training patients'.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InputDrift {
    pub model: String,
    pub version: String,
    pub role: String,
    /// Assessments in the window.
    pub assessments: usize,
    /// The window's first day (RFC 3339).
    pub since: String,
    /// Per tabular input (cohort column).
    pub inputs: Vec<ColumnDrift>,
    /// Per embedding modality with a projection.
    pub embeddings: Vec<EmbeddingDrift>,
    /// The population stability index of the model's risk against the training rows'.
    pub output_psi: Option<f64>,
    /// The recent distribution of the model's risk, in the training rows' bins (shares),
    /// beside the training shares.
    pub output_shares: Vec<(f64, f64)>,
    /// Per acquisition field (manufacturer, model, …), how many studies had each value.
    pub acquisition: BTreeMap<String, BTreeMap<String, usize>>,
    /// Per acquisition field, the population stability index of its mix in the window against
    /// the studies of the assessments before it (none before: not compared), and how many
    /// studies before the window had it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub acquisition_change: BTreeMap<String, AcquisitionChange>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AcquisitionChange {
    pub psi: f64,
    /// Studies before the window with the field.
    pub before: usize,
    /// In the window.
    pub recent: usize,
}

/// Counts of each acquisition field's values over `snapshots`.
pub fn acquisition_counts(
    snapshots: &[InputSnapshot],
) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for s in snapshots {
        for (field, value) in &s.acquisition {
            *counts
                .entry(field.clone())
                .or_default()
                .entry(value.clone())
                .or_default() += 1;
        }
    }
    counts
}

/// Per field in both, the PSI of `recent`'s mix of values against `before`'s (over the values
/// either had).
fn acquisition_change(
    before: &BTreeMap<String, BTreeMap<String, usize>>,
    recent: &BTreeMap<String, BTreeMap<String, usize>>,
) -> BTreeMap<String, AcquisitionChange> {
    let mut out = BTreeMap::new();
    for (field, now) in recent {
        let Some(then) = before.get(field) else {
            continue;
        };
        let (n_then, n_now) = (then.values().sum::<usize>(), now.values().sum::<usize>());
        if n_then == 0 || n_now == 0 {
            continue;
        }
        let values: std::collections::BTreeSet<&String> = then.keys().chain(now.keys()).collect();
        let share = |counts: &BTreeMap<String, usize>, n: usize, v: &String| {
            counts.get(v).copied().unwrap_or(0) as f64 / n as f64
        };
        let expected: Vec<f64> = values.iter().map(|v| share(then, n_then, v)).collect();
        let actual: Vec<f64> = values.iter().map(|v| share(now, n_now, v)).collect();
        out.insert(
            field.clone(),
            AcquisitionChange {
                psi: psi(&expected, &actual),
                before: n_then,
                recent: n_now,
            },
        );
    }
    out
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ColumnDrift {
    pub input: String,
    /// The population stability index against the training rows (None: no training
    /// distribution in the bundle, or nothing known in the window).
    pub psi: Option<f64>,
    pub missing_rate: f64,
    /// The share of training rows that did not have it.
    pub training_missing_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EmbeddingDrift {
    pub modality: String,
    #[serde(flatten)]
    pub shift: EmbeddingShift,
}

/// The drift of `snapshots` (one model version's in `role`, in the window from `since`)
/// against `model`'s training, and of their acquisition mix against `before` (the counts of
/// the assessments before the window, [`acquisition_counts`]).
pub fn drift_of(
    model: &Model,
    role: &str,
    since: String,
    snapshots: &[InputSnapshot],
    before: &BTreeMap<String, BTreeMap<String, usize>>,
) -> InputDrift {
    let n = snapshots.len().max(1) as f64;
    let mut columns = Vec::new();
    for modality in &model.manifest.layout.modalities {
        match modality.kind {
            ModalityKind::Tabular => {
                let mut seen_columns: Vec<&str> = Vec::new();
                for feature in &modality.features {
                    let Some(source) = &feature.source else {
                        continue;
                    };
                    let column = source.column();
                    if seen_columns.contains(&column) {
                        continue;
                    }
                    seen_columns.push(column);
                    let missing = snapshots
                        .iter()
                        .filter(|s| s.missing.iter().any(|m| m == column))
                        .count();
                    let training_missing_rate = feature
                        .seen
                        .as_ref()
                        .filter(|s| s.rows > 0)
                        .map(|s| 1.0 - s.known as f64 / s.rows as f64);
                    let psi = match source {
                        Source::Level { .. } => level_psi(modality, column, snapshots),
                        _ => feature
                            .seen
                            .as_ref()
                            .and_then(|s| s.bins.as_ref())
                            .and_then(|bins| {
                                let values: Vec<f64> = snapshots
                                    .iter()
                                    .filter_map(|s| s.numbers.get(column).copied())
                                    .collect();
                                (!values.is_empty())
                                    .then(|| psi(&bins.shares, &bins.shares_of(&values)))
                            }),
                    };
                    columns.push(ColumnDrift {
                        input: column.to_owned(),
                        psi,
                        missing_rate: missing as f64 / n,
                        training_missing_rate,
                    });
                }
            }
            ModalityKind::Embedding => {}
        }
    }
    let mut embeddings = Vec::new();
    for modality in &model.manifest.layout.modalities {
        if modality.kind != ModalityKind::Embedding || modality.projection.is_none() {
            continue;
        }
        let name = modality.modality.to_string();
        let scores: Vec<Vec<f32>> = snapshots
            .iter()
            .filter_map(|s| s.embeddings.get(&name).cloned())
            .collect();
        let missing = snapshots.len() - scores.len();
        columns.push(ColumnDrift {
            input: name.clone(),
            psi: None,
            missing_rate: missing as f64 / n,
            training_missing_rate: None,
        });
        if let Some(shift) = EmbeddingShift::of(&scores) {
            embeddings.push(EmbeddingDrift {
                modality: name,
                shift,
            });
        }
    }
    let (output_psi, output_shares) = match &model.manifest.reference {
        Some(reference) if !snapshots.is_empty() => {
            let risks: Vec<f64> = snapshots.iter().map(|s| s.log_hazard_ratio).collect();
            let recent = reference.risk.shares_of(&risks);
            (
                Some(psi(&reference.risk.shares, &recent)),
                reference.risk.shares.iter().copied().zip(recent).collect(),
            )
        }
        _ => (None, Vec::new()),
    };
    let acquisition = acquisition_counts(snapshots);
    let acquisition_change = acquisition_change(before, &acquisition);
    InputDrift {
        model: model.manifest.name.clone(),
        version: model.manifest.version.clone(),
        role: role.to_owned(),
        assessments: snapshots.len(),
        since,
        inputs: columns,
        embeddings,
        output_psi,
        output_shares,
        acquisition,
        acquisition_change,
    }
}

impl Pipeline {
    /// The drift of every loaded model version's inputs and outputs over the last
    /// `window_days` days of assessments, against its training.
    pub async fn input_drift(&self, window_days: u32) -> Result<Vec<InputDrift>, PipelineError> {
        let since = chrono::Utc::now()
            .checked_sub_signed(chrono::Duration::days(i64::from(window_days)))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let since_ms = since.timestamp_millis();
        // Every assessment's inputs: those of the window judged, the acquisition of those
        // before it counted to compare the window's with.
        let rows = self.store.model_inputs_since(0).await?;
        let mut groups: BTreeMap<(String, String, String), Vec<InputSnapshot>> = BTreeMap::new();
        let mut earlier: BTreeMap<(String, String, String), Vec<InputSnapshot>> = BTreeMap::new();
        for row in rows {
            let Ok(snapshot) = serde_json::from_str::<InputSnapshot>(&row.content) else {
                continue;
            };
            let key = (row.model, row.version, row.role);
            if row.created_ms >= since_ms {
                groups.entry(key).or_default().push(snapshot);
            } else if !snapshot.acquisition.is_empty() {
                earlier.entry(key).or_default().push(InputSnapshot {
                    acquisition: snapshot.acquisition,
                    ..InputSnapshot::default()
                });
            }
        }
        let registry = self.models();
        let since = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let drift: Vec<InputDrift> = groups
            .into_iter()
            .filter_map(|(key, snapshots)| {
                let loaded = registry.find(&key.0, &key.1)?;
                let before = earlier
                    .get(&key)
                    .map(|e| acquisition_counts(e))
                    .unwrap_or_default();
                Some(drift_of(
                    &loaded.model.model,
                    &key.2,
                    since.clone(),
                    &snapshots,
                    &before,
                ))
            })
            .collect();
        tracing::info!(models = drift.len(), "input drift computed");
        Ok(drift)
    }
}

/// A categorical column's PSI: each level's share of the rows that had the column, in the
/// window against the training rows.
fn level_psi(modality: &ModalityLayout, column: &str, snapshots: &[InputSnapshot]) -> Option<f64> {
    let levels: Vec<(&str, f64)> = modality
        .features
        .iter()
        .filter_map(|f| match (&f.source, &f.seen) {
            (Some(Source::Level { column: c, level }), Some(seen)) if c == column => {
                let count = seen.count? as f64;
                Some((level.as_str(), count / seen.known.max(1) as f64))
            }
            _ => None,
        })
        .collect();
    let recent: Vec<&str> = snapshots
        .iter()
        .filter_map(|s| s.levels.get(column).map(String::as_str))
        .collect();
    if levels.is_empty() || recent.is_empty() {
        return None;
    }
    let expected: Vec<f64> = levels.iter().map(|(_, share)| *share).collect();
    let actual: Vec<f64> = levels
        .iter()
        .map(|(level, _)| {
            recent.iter().filter(|r| *r == level).count() as f64 / recent.len() as f64
        })
        .collect();
    Some(psi(&expected, &actual))
}

impl Pipeline {
    /// How the study behind ImagingStudy `id` was acquired (its first instance's header);
    /// empty when it cannot be read (logged).
    pub(crate) async fn acquisition(&self, id: &ResourceId) -> BTreeMap<String, String> {
        match self.read_acquisition(id).await {
            Ok(fields) => fields,
            Err(e) => {
                tracing::warn!(imaging_study = %id, error = %e, "the study's acquisition could not be read");
                BTreeMap::new()
            }
        }
    }

    async fn read_acquisition(
        &self,
        id: &ResourceId,
    ) -> Result<BTreeMap<String, String>, PipelineError> {
        let stored = self.store.read(ResourceType::ImagingStudy, id).await?;
        let resource: Value = stored
            .content
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        let uid = resource["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|i| i["value"].as_str()?.strip_prefix("urn:oid:"))
            .and_then(|uid| DicomUid::parse(uid).ok());
        let Some(uid) = uid else {
            return Ok(BTreeMap::new());
        };
        let Some(study) = self.store.study(&uid).await? else {
            return Ok(BTreeMap::new());
        };
        let Some(instance) = study.series.iter().flat_map(|s| &s.instances).next() else {
            return Ok(BTreeMap::new());
        };
        let (files, hash) = (self.files.clone(), instance.sha256.clone());
        let fields = spawn_blocking_with_tracing(move || {
            let bytes = files.read(&hash).map_err(PipelineError::FileStore)?;
            Ok::<_, PipelineError>(crate::dicom::acquisition(&bytes)?)
        })
        .await
        .map_err(PipelineError::Blocking)??;
        Ok(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn studies(values: &[(&str, usize)]) -> Vec<InputSnapshot> {
        values
            .iter()
            .flat_map(|(scanner, n)| {
                (0..*n).map(|_| {
                    let mut s = InputSnapshot::default();
                    s.acquisition.insert("model".into(), (*scanner).into());
                    s
                })
            })
            .collect()
    }

    #[test]
    fn a_new_scanner_in_the_window_shows_as_a_change_of_mix() {
        let before = acquisition_counts(&studies(&[("A", 90), ("B", 10)]));
        let same = acquisition_change(
            &before,
            &acquisition_counts(&studies(&[("A", 45), ("B", 5)])),
        );
        assert!(same["model"].psi < 0.01, "{same:?}");
        let changed = acquisition_change(
            &before,
            &acquisition_counts(&studies(&[("A", 10), ("B", 5), ("C", 35)])),
        );
        assert!(changed["model"].psi > 0.25, "{changed:?}");
        assert_eq!(
            (changed["model"].before, changed["model"].recent),
            (100, 50)
        );
        // Nothing before: nothing to compare with.
        assert!(acquisition_change(&BTreeMap::new(), &before).is_empty());
    }
}
