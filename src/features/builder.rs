//! PatientContext → the features a model's input spec declares, per modality (clinical, labs,
//! genomics, notes, imaging), each value with a mask bit saying whether it is known, each
//! modality with a presence flag, and every feature that could not be filled named with the
//! reason. Values are as the training cohort recorded them (age in years, a result in the
//! cohort's unit, 0/1 indicators for levels); the model's layout standardises them. Nothing is
//! imputed here: a missing value is 0 with its mask off, and the model decides what that means.
//!
//! Features are built "as of" a moment: results after it are ignored and look-back windows
//! end there, so the same code builds features for a prediction now and for training rows in
//! the past. Embeddings come in already computed (the notes the builder selects, embedded by
//! the text encoder; the study's embedding from the store).

use chrono::{DateTime, Duration, Utc};

use super::context::{CodedResult, Measurement, Note, PatientContext, Sex};
use super::recorded;
use super::spec::{EmbeddingSpec, InputSpec, LabSpec};

use super::units::convert;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Clinical,
    Labs,
    Genomics,
    Notes,
    Imaging,
}

impl Modality {
    pub const ALL: [Modality; 5] = [
        Modality::Clinical,
        Modality::Labs,
        Modality::Genomics,
        Modality::Notes,
        Modality::Imaging,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Modality::Clinical => "clinical",
            Modality::Labs => "labs",
            Modality::Genomics => "genomics",
            Modality::Notes => "notes",
            Modality::Imaging => "imaging",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl std::fmt::Display for Modality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One modality's features, in the spec's order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModalityFeatures {
    pub modality: Modality,
    /// At least one feature known.
    pub present: bool,
    pub names: Vec<String>,
    pub values: Vec<f32>,
    /// true where the value is known.
    pub mask: Vec<bool>,
    /// The resources the known values came from.
    pub sources: Vec<String>,
    /// Feature by feature (parallel to `names`), the resource its value came from.
    pub origins: Vec<Option<String>>,
}

impl ModalityFeatures {
    fn new(modality: Modality) -> Self {
        Self {
            modality,
            present: false,
            names: Vec::new(),
            values: Vec::new(),
            mask: Vec::new(),
            sources: Vec::new(),
            origins: Vec::new(),
        }
    }

    fn known(&mut self, name: impl Into<String>, value: f64, source: Option<&str>) {
        self.names.push(name.into());
        self.values.push(value as f32);
        self.mask.push(true);
        self.present = true;
        self.origins.push(source.map(str::to_owned));
        if let Some(source) = source
            && !self.sources.iter().any(|s| s == source)
        {
            self.sources.push(source.to_owned());
        }
    }

    fn unknown(&mut self, name: impl Into<String>) {
        self.names.push(name.into());
        self.values.push(0.0);
        self.mask.push(false);
        self.origins.push(None);
    }
}

/// A feature the builder could not fill, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unfilled {
    pub modality: Modality,
    pub feature: String,
    pub reason: String,
}

/// The features of one patient for one model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeatureSet {
    pub patient: String,
    pub as_of: DateTime<Utc>,
    /// Only the modalities the spec declares, in the order clinical, labs, genomics, notes,
    /// imaging.
    pub modalities: Vec<ModalityFeatures>,
    pub unfilled: Vec<Unfilled>,
    /// Values not read as recorded but derived (a level from the age), in words.
    pub notes: Vec<String>,
}

impl FeatureSet {
    pub fn modality(&self, modality: Modality) -> Option<&ModalityFeatures> {
        self.modalities.iter().find(|m| m.modality == modality)
    }

    /// Takes every indicator of a categorical column (`{column}={level}`) as unknown.
    pub fn forget_column(&mut self, column: &str) {
        let prefix = format!("{column}=");
        for modality in &mut self.modalities {
            for (name, known) in modality.names.iter().zip(modality.mask.iter_mut()) {
                if name.starts_with(&prefix) {
                    *known = false;
                }
            }
            modality.present = modality.mask.iter().any(|k| *k);
        }
    }

    /// (value, known) of every feature by name, to look many up at once (an embedding brings
    /// a thousand).
    pub fn by_name(&self) -> std::collections::HashMap<&str, (f32, bool)> {
        self.modalities
            .iter()
            .flat_map(|m| {
                m.names
                    .iter()
                    .zip(m.values.iter().zip(&m.mask))
                    .map(|(n, (v, k))| (n.as_str(), (*v, *k)))
            })
            .collect()
    }

    /// (value, known) of a named feature.
    pub fn value(&self, name: &str) -> Option<(f32, bool)> {
        self.modalities.iter().find_map(|m| {
            let at = m.names.iter().position(|n| n == name)?;
            Some((m.values[at], m.mask[at]))
        })
    }
}

/// An embedding computed for the builder, with the resources it was computed from.
#[derive(Debug, Clone, Default)]
pub struct Embedded {
    pub vector: Vec<f32>,
    pub sources: Vec<String>,
}

/// Embeddings available for this patient (none: the modality is missing).
#[derive(Debug, Clone, Default)]
pub struct Embeddings {
    pub notes: Option<Embedded>,
    pub imaging: Option<Embedded>,
}

/// The moment features describe a patient at: ages are counted to `at`, look-back windows
/// end at `at`, and facts recorded up to `until` are taken as describing the patient at `at`
/// (a model whose index date is a diagnosis reads the pathology reported weeks later). For a
/// prediction "now" both are the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AsOf {
    pub at: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl From<DateTime<Utc>> for AsOf {
    fn from(at: DateTime<Utc>) -> Self {
        AsOf { at, until: at }
    }
}

pub(super) fn within(when: Option<DateTime<Utc>>, as_of: AsOf, lookback_days: Option<u32>) -> bool {
    match when {
        // Undated facts are taken as current only when there is no window to respect.
        None => lookback_days.is_none(),
        Some(when) => {
            when <= as_of.until
                && lookback_days
                    .is_none_or(|days| when >= as_of.at - Duration::days(i64::from(days)))
        }
    }
}

/// The notes within the spec's window, latest first: what to embed for the notes modality.
pub fn notes_to_embed<'a>(
    spec: &EmbeddingSpec,
    context: &'a PatientContext,
    as_of: impl Into<AsOf>,
) -> Vec<&'a Note> {
    let as_of = as_of.into();
    let mut notes: Vec<&Note> = context
        .notes
        .iter()
        .filter(|n| within(n.date, as_of, spec.lookback_days))
        .collect();
    notes.sort_by_key(|n| std::cmp::Reverse(n.date));
    notes
}

/// Equal-weight mean of note embeddings, L2-normalised again (the notes modality's vector).
pub fn pool_embeddings(embeddings: &[Vec<f32>]) -> Option<Vec<f32>> {
    let first = embeddings.first()?;
    let mut mean = vec![0f32; first.len()];
    for embedding in embeddings {
        for (m, v) in mean.iter_mut().zip(embedding) {
            *m += v;
        }
    }
    let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        mean.iter_mut().for_each(|v| *v /= norm);
    }
    Some(mean)
}

/// Builds the features `spec` declares from `context` as of `as_of`.
pub fn build_features(
    spec: &InputSpec,
    context: &PatientContext,
    embeddings: &Embeddings,
    as_of: impl Into<AsOf>,
) -> FeatureSet {
    let as_of = as_of.into();
    let mut set = FeatureSet {
        patient: context.patient.clone(),
        as_of: as_of.at,
        modalities: Vec::new(),
        unfilled: Vec::new(),
        notes: Vec::new(),
    };
    let mut unfilled = |modality, feature: &str, reason: String| {
        set.unfilled.push(Unfilled {
            modality,
            feature: feature.to_owned(),
            reason,
        });
    };
    let mut modalities = Vec::new();

    if let Some(clinical) = &spec.clinical {
        let mut features = ModalityFeatures::new(Modality::Clinical);
        if clinical.age {
            match context.birth_date {
                Some(born) if born <= as_of.at.date_naive() => {
                    let years = super::context::age_in_years(born, as_of.at.date_naive());
                    features.known("age", years, Some(&context.patient));
                }
                Some(_) => {
                    features.unknown("age");
                    unfilled(
                        Modality::Clinical,
                        "age",
                        "birth date after the prediction date".into(),
                    );
                }
                None => {
                    features.unknown("age");
                    unfilled(Modality::Clinical, "age", "no birth date".into());
                }
            }
        }
        if clinical.sex {
            match context.sex {
                Some(sex @ (Sex::Female | Sex::Male)) => {
                    let female = f64::from(u8::from(sex == Sex::Female));
                    features.known("sex_female", female, Some(&context.patient));
                    features.known("sex_male", 1.0 - female, Some(&context.patient));
                }
                other => {
                    features.unknown("sex_female");
                    features.unknown("sex_male");
                    let reason = match other {
                        Some(_) => "administrative gender `other`",
                        None => "no administrative gender",
                    };
                    unfilled(Modality::Clinical, "sex", reason.into());
                }
            }
        }
        if clinical.stage {
            let stage = context
                .stage_groups
                .iter()
                .find(|s| within(s.effective, as_of, None));
            match stage {
                Some(stage) => {
                    for group in 0..=4u8 {
                        features.known(
                            format!("stage_{group}"),
                            f64::from(u8::from(stage.group == group)),
                            Some(&stage.source),
                        );
                    }
                }
                None => {
                    for group in 0..=4u8 {
                        features.unknown(format!("stage_{group}"));
                    }
                    unfilled(
                        Modality::Clinical,
                        "stage",
                        "no TNM stage group recorded".into(),
                    );
                }
            }
        }
        for marker in &clinical.markers {
            match latest_marker(&context.coded_results, &marker.loinc, as_of) {
                Ok(result) => {
                    let positive = result.positive().unwrap_or_default();
                    features.known(
                        &marker.name,
                        f64::from(u8::from(positive)),
                        Some(&result.source),
                    );
                }
                Err(reason) => {
                    features.unknown(&marker.name);
                    unfilled(Modality::Clinical, &marker.name, reason);
                }
            }
        }
        let readings = clinical
            .categories
            .iter()
            .map(|c| {
                let levels: Vec<&str> = c.levels.keys().map(String::as_str).collect();
                (&c.name, levels, recorded::category_level(context, c, as_of))
            })
            .chain(clinical.treatments.iter().map(|t| {
                (
                    &t.name,
                    vec![t.given.as_str(), t.not_given.as_str()],
                    recorded::treatment_level(context, t, as_of),
                )
            }))
            .chain(clinical.statuses.iter().map(|s| {
                (
                    &s.name,
                    vec!["positive", "negative"],
                    recorded::status_level(context, s, as_of),
                )
            }))
            .chain(clinical.ranges.iter().map(|r| {
                (
                    &r.name,
                    r.levels.iter().map(|l| l.name.as_str()).collect(),
                    recorded::range_level(context, r, as_of),
                )
            }));
        for (name, levels, reading) in readings {
            one_hot(
                &mut features,
                name,
                levels,
                reading.as_ref().ok().map(|r| (r.level.as_str(), r.source)),
            );
            match reading {
                Ok(reading) => set.notes.extend(reading.derived),
                Err(reason) => unfilled(Modality::Clinical, name, reason),
            }
        }
        modalities.push(features);
    }

    if !spec.labs.is_empty() {
        let mut features = ModalityFeatures::new(Modality::Labs);
        for lab in &spec.labs {
            match latest_lab(&context.measurements, lab, as_of) {
                Ok((value, source)) => features.known(&lab.name, value, Some(source)),
                Err(reason) => {
                    features.unknown(&lab.name);
                    unfilled(Modality::Labs, &lab.name, reason);
                }
            }
        }
        modalities.push(features);
    }

    if let Some(genomics) = &spec.genomics {
        let mut features = ModalityFeatures::new(Modality::Genomics);
        for gene in &genomics.genes {
            let same = |g: &str| g.eq_ignore_ascii_case(gene);
            let affecting = context
                .variants
                .iter()
                .find(|v| v.gene.as_deref().is_some_and(same) && v.affects_gene());
            if let Some(variant) = affecting {
                features.known(gene, 1.0, Some(&variant.source));
            } else if context.genes_studied.iter().any(|g| same(g)) {
                let source = context
                    .variants
                    .iter()
                    .find(|v| v.gene.as_deref().is_some_and(same))
                    .map(|v| v.source.as_str());
                features.known(gene, 0.0, source);
            } else {
                features.unknown(gene);
                let reason = if context.variants.is_empty() && context.genes_studied.is_empty() {
                    "no genomic results for the patient"
                } else {
                    "the gene is not among those studied"
                };
                unfilled(Modality::Genomics, gene, reason.into());
            }
        }
        modalities.push(features);
    }

    for (modality, spec, embedded) in [
        (Modality::Notes, &spec.notes, &embeddings.notes),
        (Modality::Imaging, &spec.imaging, &embeddings.imaging),
    ] {
        let Some(spec) = spec else { continue };
        let mut features = ModalityFeatures::new(modality);
        // Named as the cohort's embedding columns are (`notes_0`, `imaging_0` …).
        let name = |i: usize| format!("{modality}_{i}");
        match embedded {
            Some(e) if e.vector.len() == spec.dimension => {
                for (i, v) in e.vector.iter().enumerate() {
                    features.known(name(i), f64::from(*v), None);
                }
                features.sources = e.sources.clone();
            }
            other => {
                for i in 0..spec.dimension {
                    features.unknown(name(i));
                }
                let reason = match (other, modality) {
                    (Some(e), _) => format!(
                        "the {} embedding has {} values, the model expects {}",
                        spec.encoder,
                        e.vector.len(),
                        spec.dimension
                    ),
                    (None, Modality::Notes) => "no note text in the look-back window".into(),
                    (None, _) => "no encoded imaging study".into(),
                };
                unfilled(modality, &spec.encoder, reason);
            }
        }
        modalities.push(features);
    }
    set.modalities = modalities;
    set
}

/// Every feature `spec` fills, with its modality, in the builder's order (what a model trained
/// with this spec may take).
pub fn spec_features(spec: &InputSpec) -> Vec<(Modality, String)> {
    let empty = PatientContext::default();
    build_features(
        spec,
        &empty,
        &Embeddings::default(),
        DateTime::<Utc>::MIN_UTC,
    )
    .modalities
    .into_iter()
    .flat_map(|m| m.names.into_iter().map(move |n| (m.modality, n)))
    .collect()
}

/// One indicator per level, named `{name}={level}` (as the training layout names them): all
/// known when the level is, all unknown otherwise.
fn one_hot<'a>(
    features: &mut ModalityFeatures,
    name: &str,
    levels: impl IntoIterator<Item = &'a str>,
    found: Option<(&str, &str)>,
) {
    for level in levels {
        let feature = format!("{name}={level}");
        match found {
            Some((found, source)) => {
                features.known(feature, f64::from(u8::from(found == level)), Some(source));
            }
            None => features.unknown(feature),
        }
    }
}

/// The latest positive/negative answer among results with any of `loinc`.
fn latest_marker<'a>(
    results: &'a [CodedResult],
    loinc: &[String],
    as_of: AsOf,
) -> Result<&'a CodedResult, String> {
    let mut candidates: Vec<&CodedResult> = results
        .iter()
        .filter(|r| r.codes.iter().any(|c| loinc.contains(c)))
        .filter(|r| r.effective.is_none_or(|e| e <= as_of.until))
        .collect();
    if candidates.is_empty() {
        return Err("no result with these codes".into());
    }
    candidates.sort_by_key(|r| std::cmp::Reverse(r.effective));
    candidates
        .into_iter()
        .find(|r| r.positive().is_some())
        .ok_or_else(|| "results found, none answered positive or negative".into())
}

/// The latest value of `lab` within its window, in its unit; or why there is none.
fn latest_lab<'a>(
    measurements: &'a [Measurement],
    lab: &LabSpec,
    as_of: AsOf,
) -> Result<(f64, &'a str), String> {
    let mut coded: Vec<&Measurement> = measurements
        .iter()
        .filter(|m| m.codes.iter().any(|c| lab.loinc.contains(c)))
        .collect();
    if coded.is_empty() {
        return Err("no result with these codes".into());
    }
    coded.sort_by_key(|m| std::cmp::Reverse(m.effective));
    let mut reasons = Vec::new();
    let mut in_window = 0;
    for m in coded {
        if !within(m.effective, as_of, Some(lab.lookback_days)) {
            continue;
        }
        in_window += 1;
        let Some(unit) = &m.unit else {
            reasons.push(format!("{} has no unit", m.source));
            continue;
        };
        match convert(m.value, unit, &lab.unit, lab.molar_mass) {
            Ok(value) if value.is_finite() => return Ok((value, &m.source)),
            Ok(_) => reasons.push(format!("{} is not a finite number", m.source)),
            Err(e) => reasons.push(format!("{}: {e}", m.source)),
        }
    }
    if in_window == 0 {
        return Err(format!(
            "no result in the {} days before the prediction",
            lab.lookback_days
        ));
    }
    Err(reasons.join("; "))
}

#[cfg(test)]
#[path = "builder_tests.rs"]
mod tests;
