//! The inputs a model declares in its manifest: where in FHIR each of its cohort's columns is
//! found. Which clinical facts (age, sex, stage, tumour markers, coded findings such as
//! menopausal status or grade, treatments given), which laboratory results (LOINC codes, the
//! unit the cohort recorded them in, how far back a result may be), which genes, and the
//! embeddings (notes, imaging) with their encoder and size. The feature builder fills exactly
//! these, in this order, with values as the cohort had them (years, the cohort's unit, levels);
//! the model's layout standardises them the way it did in training.
//!
//! ```toml
//! [clinical]
//! age = true
//! sex = true
//! stage = true
//! markers = [{ name = "er_positive", loinc = ["85337-4", "16112-5"] }]
//!
//! [[clinical.categories]]
//! name = "menostat"
//! codes = ["161712005"]
//! levels = { Pre = ["22636003"], Post = ["76498008"] }
//!
//! [[clinical.treatments]]
//! name = "horTh"
//! codes = ["10324", "169413002"]
//! given = "yes"
//! not_given = "no"
//!
//! [[labs]]
//! name = "creatinine"
//! loinc = ["2160-0", "14682-9"]
//! unit = "mg/dL"
//! molar_mass = 113.12
//! lookback_days = 180
//!
//! [genomics]
//! genes = ["BRCA1", "BRCA2", "TP53", "PIK3CA"]
//!
//! [notes]
//! encoder = "all-minilm-l6-v2"
//! dimension = 384
//! lookback_days = 365
//!
//! [imaging]
//! encoder = "resnet50-imagenet"
//! dimension = 2048
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::population::PopulationSpec;
use crate::fhir::terminology::{concept_map, value_set};

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub clinical: Option<ClinicalSpec>,
    #[serde(default)]
    pub labs: Vec<LabSpec>,
    pub genomics: Option<GenomicsSpec>,
    pub notes: Option<EmbeddingSpec>,
    pub imaging: Option<EmbeddingSpec>,
    /// What the model predicts, as the service's outcome code (its FHIR code system).
    pub outcome: Option<OutcomeSpec>,
    /// Who the model is for and from when its risk counts; none: anyone, from now.
    pub population: Option<PopulationSpec>,
    /// Inputs (column names) without which the model does not answer.
    #[serde(default)]
    pub required: Vec<String>,
    /// Inputs (column names) the model is judged in groups of once outcomes arrive (besides
    /// sex, age band, site and scanner): a categorical input by level, a numeric one at the
    /// training patients' median.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subgroups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeSpec {
    /// A code of the service's code system (`recurrence-or-death`, `death`, `progression` …).
    pub code: String,
    pub display: String,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClinicalSpec {
    /// Age in years at the time of the prediction (from `Patient.birthDate`; the fact LOINC
    /// 30525-0 names).
    #[serde(default)]
    pub age: bool,
    /// Administrative sex, one-hot (`sex_female`, `sex_male`).
    #[serde(default)]
    pub sex: bool,
    /// TNM stage group, one-hot `stage_0` … `stage_4` (the latest stage group recorded).
    #[serde(default)]
    pub stage: bool,
    /// Positive (1) or negative (0) results, the latest of any of their codes.
    #[serde(default)]
    pub markers: Vec<MarkerSpec>,
    /// Coded findings whose answer is one of a categorical column's levels.
    #[serde(default)]
    pub categories: Vec<CategorySpec>,
    /// Treatments recorded as given or explicitly not given.
    #[serde(default)]
    pub treatments: Vec<TreatmentSpec>,
    /// Positive/negative statuses (receptors), from a qualitative result or a level.
    #[serde(default)]
    pub statuses: Vec<StatusSpec>,
    /// Counts taken as the range they fall in, from a count or a category standing for one.
    #[serde(default)]
    pub ranges: Vec<RangeSpec>,
}

/// A status with the levels `positive` and `negative` (features `{name}=positive`,
/// `{name}=negative`), from the latest result with a code of the `results` ValueSet: a
/// positive or negative answer, or a level compared with the threshold of its unit. The first
/// threshold is in the training cohort's unit: a numeric cohort column is recoded with it.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSpec {
    pub name: String,
    /// ValueSet of the result's Observation codes.
    pub results: String,
    /// A level at or above one of these (in its unit) is positive.
    pub positive_at: Vec<Threshold>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub value: f64,
    /// UCUM.
    pub unit: String,
}

/// A count as the range it falls in (features `{name}={level}`): from the latest count with
/// one of `counts`, else from the latest category (an Observation of the `categories` ValueSet,
/// pathological before clinical) whose answer the `category_map` ConceptMap, or the AJCC
/// notation of its words, translates to a range's `code`. A range is used as such, never as a
/// guessed number. A numeric cohort column is recoded into the levels at training.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    pub name: String,
    /// LOINC codes of the count.
    pub counts: Vec<String>,
    /// ValueSet of the category Observations' codes.
    pub categories: Option<String>,
    /// ConceptMap of category answers to the ranges' codes.
    pub category_map: Option<String>,
    pub levels: Vec<RangeLevel>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RangeLevel {
    pub name: String,
    /// Inclusive bounds; none: unbounded.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The code a category translates to for this range.
    pub code: Option<String>,
}

impl RangeLevel {
    pub fn contains(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }
}

/// A level taken from the age at the index date when no finding is on record.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgeLevel {
    pub level: String,
    /// Years, inclusive.
    pub from: Option<f64>,
    /// Years, exclusive.
    pub below: Option<f64>,
}

/// A categorical column filled from the latest Observation with one of `codes`, whose answer
/// (`valueCodeableConcept`) has one of a level's codes. Features: one indicator per level,
/// named `{name}={level}` (as the training layout names them).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CategorySpec {
    pub name: String,
    /// Observation codes (LOINC or SNOMED CT), any of which identifies the finding.
    #[serde(default)]
    pub codes: Vec<String>,
    /// A ValueSet of further Observation codes identifying it.
    pub findings: Option<String>,
    /// Level → the answer codes meaning it.
    pub levels: BTreeMap<String, Vec<String>>,
    /// A ConceptMap translating other answers into the levels' codes.
    pub answers: Option<String>,
    /// Without a finding on record: the level the age at the index date implies, if any.
    #[serde(default)]
    pub from_age: Vec<AgeLevel>,
}

/// A categorical column with two levels: `given` when a MedicationRequest, MedicationStatement,
/// MedicationAdministration or Procedure with one of `codes` is on record; `not_given` when the
/// record says it was not given (not taken, not done, do not perform). With no record at all the
/// value is unknown: absence from one system is not evidence of absence.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TreatmentSpec {
    pub name: String,
    /// Medication codes (RxNorm, SNOMED CT) or procedure codes.
    #[serde(default)]
    pub codes: Vec<String>,
    /// A ValueSet of them (a drug class: ingredients, an ATC branch).
    pub value_set: Option<String>,
    pub given: String,
    pub not_given: String,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MarkerSpec {
    pub name: String,
    pub loinc: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    pub name: String,
    /// LOINC codes accepted for this result, any of which fills it.
    pub loinc: Vec<String>,
    /// The UCUM unit of the cohort the model was trained on; values in other units are
    /// converted.
    pub unit: String,
    /// g/mol of the analyte, for results reported in moles where the model uses mass (or
    /// the reverse).
    pub molar_mass: Option<f64>,
    /// Oldest result used, in days before the prediction.
    #[serde(default = "LabSpec::default_lookback_days")]
    pub lookback_days: u32,
}

impl LabSpec {
    fn default_lookback_days() -> u32 {
        365
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GenomicsSpec {
    /// HGNC symbols; each gets an indicator: 1 when a variant found in it is pathogenic,
    /// likely pathogenic or unclassified, 0 when the gene was studied without such a finding.
    pub genes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSpec {
    /// The encoder (a manifest name) whose embeddings the model was trained on.
    pub encoder: String,
    pub dimension: usize,
    /// Oldest note or study used, in days before the prediction; none: no limit.
    pub lookback_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the model's input spec is not usable: {0}")]
pub struct SpecError(String);

fn known_value_set(url: &Option<String>) -> Result<(), SpecError> {
    match url {
        Some(url) if value_set(url).is_none() => Err(SpecError(format!(
            "the ValueSet {url} is not one the service has"
        ))),
        _ => Ok(()),
    }
}

fn known_concept_map(url: &Option<String>) -> Result<(), SpecError> {
    match url {
        Some(url) if concept_map(url).is_none() => Err(SpecError(format!(
            "the ConceptMap {url} is not one the service has"
        ))),
        _ => Ok(()),
    }
}

impl InputSpec {
    /// Checks what serde cannot: names unique, codes given, ValueSets and ConceptMaps known.
    pub fn validate(&self) -> Result<(), SpecError> {
        let mut names = BTreeSet::new();
        let mut unique = |name: &str| {
            if names.insert(name.to_owned()) {
                Ok(())
            } else {
                Err(SpecError(format!(
                    "the feature name `{name}` is used twice"
                )))
            }
        };
        let coded = |what: &str, name: &str, codes: &[String]| {
            if codes.is_empty() {
                Err(SpecError(format!("{what} `{name}` has no code")))
            } else {
                Ok(())
            }
        };
        if let Some(clinical) = &self.clinical {
            for marker in &clinical.markers {
                unique(&marker.name)?;
                coded("marker", &marker.name, &marker.loinc)?;
            }
            for category in &clinical.categories {
                unique(&category.name)?;
                if category.findings.is_none() {
                    coded("category", &category.name, &category.codes)?;
                }
                known_value_set(&category.findings)?;
                known_concept_map(&category.answers)?;
                if let Some(age) = category
                    .from_age
                    .iter()
                    .find(|a| !category.levels.contains_key(&a.level))
                {
                    return Err(SpecError(format!(
                        "category `{}`: `from_age` names the level `{}`, which it lacks",
                        category.name, age.level
                    )));
                }
                if category.levels.is_empty() {
                    return Err(SpecError(format!(
                        "category `{}` has no levels",
                        category.name
                    )));
                }
                let mut answers = BTreeSet::new();
                for (level, codes) in &category.levels {
                    coded("level", &format!("{}={level}", category.name), codes)?;
                    if let Some(twice) = codes.iter().find(|c| !answers.insert(*c)) {
                        return Err(SpecError(format!(
                            "category `{}`: the answer code {twice} is given to two levels",
                            category.name
                        )));
                    }
                }
            }
            for treatment in &clinical.treatments {
                unique(&treatment.name)?;
                if treatment.value_set.is_none() {
                    coded("treatment", &treatment.name, &treatment.codes)?;
                }
                known_value_set(&treatment.value_set)?;
                if treatment.given == treatment.not_given {
                    return Err(SpecError(format!(
                        "treatment `{}`: `given` and `not_given` are the same level",
                        treatment.name
                    )));
                }
            }
        }
        if let Some(clinical) = &self.clinical {
            for status in &clinical.statuses {
                unique(&status.name)?;
                known_value_set(&Some(status.results.clone()))?;
                if status.positive_at.is_empty() {
                    return Err(SpecError(format!(
                        "status `{}` has no `positive_at` threshold",
                        status.name
                    )));
                }
                for threshold in &status.positive_at {
                    super::units::Unit::parse(&threshold.unit)
                        .map_err(|e| SpecError(format!("status `{}`: {e}", status.name)))?;
                }
            }
            for range in &clinical.ranges {
                unique(&range.name)?;
                known_value_set(&range.categories)?;
                known_concept_map(&range.category_map)?;
                if range.levels.is_empty() {
                    return Err(SpecError(format!("range `{}` has no levels", range.name)));
                }
            }
        }
        for lab in &self.labs {
            unique(&lab.name)?;
            coded("lab", &lab.name, &lab.loinc)?;
            super::units::Unit::parse(&lab.unit)
                .map_err(|e| SpecError(format!("lab `{}`: {e}", lab.name)))?;
        }
        if let Some(genomics) = &self.genomics {
            for gene in &genomics.genes {
                unique(gene)?;
            }
        }
        for (what, spec) in [("notes", &self.notes), ("imaging", &self.imaging)] {
            if spec.as_ref().is_some_and(|s| s.dimension == 0) {
                return Err(SpecError(format!("{what}: the dimension must be positive")));
            }
        }
        if !self.required.is_empty() || !self.subgroups.is_empty() {
            let filled: BTreeSet<String> = super::builder::spec_features(self)
                .into_iter()
                .map(|(_, name)| {
                    name.split_once('=')
                        .map_or(name.clone(), |(c, _)| c.to_owned())
                })
                .collect();
            for (what, names) in [("required", &self.required), ("subgroups", &self.subgroups)] {
                if let Some(unknown) = names.iter().find(|r| !filled.contains(*r)) {
                    return Err(SpecError(format!(
                        "`{what}` names `{unknown}`, which the spec does not fill"
                    )));
                }
            }
        }
        if let Some(population) = &self.population {
            population
                .validate()
                .map_err(|e| SpecError(format!("population: {e}")))?;
        }
        Ok(())
    }
}

/// A test whose result fills an input (LOINC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderableTest {
    pub code: String,
    pub display: Option<String>,
}

pub const LOINC: &str = "http://loinc.org";

/// Whether a code has the form of a LOINC code (`21889-1`).
fn is_loinc(code: &str) -> bool {
    code.split_once('-').is_some_and(|(number, check)| {
        !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
            && check.len() == 1
            && check.bytes().all(|b| b.is_ascii_digit())
    })
}

impl InputSpec {
    /// The tests whose results fill input `feature` (a column, or `column=level`), in the
    /// spec's order (the first is the one the training cohort measured): laboratory and
    /// pathology results, markers, receptor statuses, counts and coded findings with a LOINC
    /// code. Empty for what no test gives (age, treatments, history).
    pub fn orderable_tests(&self, feature: &str) -> Vec<OrderableTest> {
        let column = feature
            .split_once('=')
            .map_or(feature, |(column, _)| column);
        let plain = |codes: &[String]| -> Vec<OrderableTest> {
            codes
                .iter()
                .filter(|c| is_loinc(c))
                .map(|c| OrderableTest {
                    code: c.clone(),
                    display: None,
                })
                .collect()
        };
        if let Some(lab) = self.labs.iter().find(|l| l.name == column) {
            return plain(&lab.loinc);
        }
        let Some(clinical) = &self.clinical else {
            return Vec::new();
        };
        if let Some(marker) = clinical.markers.iter().find(|m| m.name == column) {
            return plain(&marker.loinc);
        }
        if let Some(range) = clinical.ranges.iter().find(|r| r.name == column) {
            return plain(&range.counts);
        }
        if let Some(category) = clinical.categories.iter().find(|c| c.name == column) {
            return plain(&category.codes);
        }
        if let Some(status) = clinical.statuses.iter().find(|s| s.name == column) {
            return value_set(&status.results)
                .map(|set| {
                    set.listed()
                        .iter()
                        .filter(|(system, code, _)| system == LOINC && is_loinc(code))
                        .map(|(_, code, display)| OrderableTest {
                            code: code.clone(),
                            display: display.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default();
        }
        Vec::new()
    }

    /// The inputs (columns) a test with this LOINC code fills, by the codes and ValueSets the
    /// spec names.
    pub fn inputs_filled_by(&self, code: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let mut columns: Vec<&str> = self.labs.iter().map(|l| l.name.as_str()).collect();
        if let Some(clinical) = &self.clinical {
            columns.extend(clinical.markers.iter().map(|m| m.name.as_str()));
            columns.extend(clinical.ranges.iter().map(|r| r.name.as_str()));
            columns.extend(clinical.categories.iter().map(|c| c.name.as_str()));
            columns.extend(clinical.statuses.iter().map(|s| s.name.as_str()));
        }
        for column in columns {
            if self.orderable_tests(column).iter().any(|t| t.code == code)
                && !names.iter().any(|n| n == column)
            {
                names.push(column.to_owned());
            }
        }
        names
    }

    /// The codes of every Observation the spec reads, when they can be listed (bare codes, so
    /// that a search matches them in any code system): None when it also reads Observations by
    /// their answer whatever their code (a population's event findings), or through a ValueSet
    /// with hierarchy filters, so that only all of a patient's Observations will do.
    pub fn observation_codes(&self) -> Option<Vec<String>> {
        let mut codes: Vec<String> = Vec::new();
        let mut add = |code: &str| {
            if !codes.iter().any(|c| c == code) {
                codes.push(code.to_owned());
            }
        };
        let listed = |url: &str| -> Option<Vec<String>> {
            let set = value_set(url)?;
            set.is_enumerated()
                .then(|| set.listed().iter().map(|(_, c, _)| c.clone()).collect())
        };
        if self
            .population
            .as_ref()
            .is_some_and(|p| !p.event.findings.is_empty())
        {
            return None;
        }
        if self.population.as_ref().is_some_and(|p| p.stage.is_some())
            || self.clinical.as_ref().is_some_and(|c| c.stage)
        {
            crate::fhir::codes::STAGE_GROUPS
                .iter()
                .for_each(|(code, _)| add(code));
        }
        if self.genomics.is_some() {
            add(crate::fhir::codes::VARIANT);
        }
        for lab in &self.labs {
            lab.loinc.iter().for_each(|c| add(c));
        }
        if let Some(clinical) = &self.clinical {
            for marker in &clinical.markers {
                marker.loinc.iter().for_each(|c| add(c));
            }
            for category in &clinical.categories {
                category.codes.iter().for_each(|c| add(c));
                if let Some(url) = &category.findings {
                    listed(url)?.iter().for_each(|c| add(c));
                }
            }
            for status in &clinical.statuses {
                listed(&status.results)?.iter().for_each(|c| add(c));
            }
            for range in &clinical.ranges {
                range.counts.iter().for_each(|c| add(c));
                if let Some(url) = &range.categories {
                    listed(url)?.iter().for_each(|c| add(c));
                }
            }
        }
        Some(codes)
    }

    /// Where a feature of this spec comes from in FHIR, in words (for model cards); None for
    /// a feature the spec does not fill.
    pub fn fhir_source(&self, feature: &str) -> Option<String> {
        let codes = |codes: &[String]| codes.join(", ");
        let (column, level) = match feature.split_once('=') {
            Some((column, level)) => (column, Some(level)),
            None => (feature, None),
        };
        if let Some(clinical) = &self.clinical {
            match feature {
                "age" if clinical.age => return Some("Patient.birthDate, years".into()),
                "sex_female" | "sex_male" if clinical.sex => {
                    return Some("Patient.gender".into());
                }
                _ => {}
            }
            if clinical.stage && feature.starts_with("stage_") {
                return Some("TNM stage group Observation (mCODE)".into());
            }
            if let Some(marker) = clinical.markers.iter().find(|m| m.name == feature) {
                return Some(format!(
                    "Observation LOINC {} positive (1) or negative (0)",
                    codes(&marker.loinc)
                ));
            }
            if let Some(category) = clinical.categories.iter().find(|c| c.name == column) {
                let level = level?;
                let answers = category.levels.get(level)?;
                let mut findings = codes(&category.codes);
                if let Some(url) = &category.findings {
                    let title = value_set(url).map_or(url.as_str(), |v| &v.title);
                    findings = if findings.is_empty() {
                        format!("a {title} finding")
                    } else {
                        format!("{findings} or a {title} finding")
                    };
                }
                let mut text = format!("Observation {findings} answered {}", codes(answers));
                if let Some(map) = category.answers.as_deref().and_then(concept_map) {
                    text += &format!(" (or an answer the ConceptMap {} maps there)", map.title);
                }
                if let Some(rule) = category.from_age.iter().find(|a| a.level == level) {
                    let bounds = match (rule.from, rule.below) {
                        (Some(from), Some(below)) => format!("aged {from} to under {below}"),
                        (Some(from), None) => format!("aged {from} or more"),
                        (None, Some(below)) => format!("aged under {below}"),
                        (None, None) => "any age".into(),
                    };
                    text += &format!("; without a finding, {bounds} at the index date");
                }
                return Some(text);
            }
            if let Some(status) = clinical.statuses.iter().find(|s| s.name == column) {
                let thresholds: Vec<String> = status
                    .positive_at
                    .iter()
                    .map(|t| format!("{} {}", t.value, t.unit))
                    .collect();
                return Some(format!(
                    "{}: a positive/negative result, or a level at or above {}",
                    value_set(&status.results).map_or(status.results.as_str(), |v| &v.title),
                    thresholds.join(" or ")
                ));
            }
            if let Some(range) = clinical.ranges.iter().find(|r| r.name == column) {
                let mut from = format!("Observation LOINC {} (a count)", codes(&range.counts));
                if let Some(categories) = &range.categories {
                    from += &format!(
                        ", else the {}",
                        value_set(categories).map_or(categories.as_str(), |v| &v.title)
                    );
                }
                return Some(format!("{from}, as the range {}", level?));
            }
            if let Some(treatment) = clinical.treatments.iter().find(|t| t.name == column) {
                let how = if level? == treatment.given {
                    "given"
                } else {
                    "recorded as not given"
                };
                let what = match &treatment.value_set {
                    Some(url) => value_set(url).map_or(url.clone(), |v| v.title.clone()),
                    None => codes(&treatment.codes),
                };
                return Some(format!("{what} {how}"));
            }
        }
        if let Some(lab) = self.labs.iter().find(|l| l.name == feature) {
            return Some(format!(
                "Observation LOINC {} in {}, last {} days",
                codes(&lab.loinc),
                lab.unit,
                lab.lookback_days
            ));
        }
        if self
            .genomics
            .as_ref()
            .is_some_and(|g| g.genes.iter().any(|gene| gene == feature))
        {
            return Some(format!("variants in {feature} (Genomics Reporting)"));
        }
        for (prefix, spec) in [("notes_", &self.notes), ("imaging_", &self.imaging)] {
            if let Some(spec) = spec
                && feature
                    .strip_prefix(prefix)
                    .is_some_and(|n| n.parse::<usize>().is_ok())
            {
                return Some(format!("{} embedding", spec.encoder));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_spec() -> InputSpec {
        let manifest: serde_json::Value = serde_json::from_str(include_str!(
            "../../models/risk/gbsg2-recurrence/manifest.json"
        ))
        .unwrap();
        serde_json::from_value(manifest["inputs"].clone()).unwrap()
    }

    #[test]
    fn the_tests_that_fill_an_input_are_named_and_found_by_code() {
        let spec = default_spec();
        let progrec = spec.orderable_tests("progrec=positive");
        assert_eq!(progrec[0].code, "31207-4");
        assert_eq!(progrec.len(), 4);
        assert!(
            progrec[0]
                .display
                .as_deref()
                .unwrap()
                .contains("Progesterone")
        );
        assert_eq!(spec.orderable_tests("tsize")[0].code, "21889-1");
        assert_eq!(spec.orderable_tests("tgrade=II")[0].code, "33732-9");
        // What no test gives: age, history coded in SNOMED CT, treatments.
        assert!(spec.orderable_tests("age").is_empty());
        assert!(spec.orderable_tests("menostat=Post").is_empty());
        assert!(spec.orderable_tests("horTh=yes").is_empty());
        assert_eq!(spec.inputs_filled_by("40557-1"), ["progrec"]);
        assert_eq!(spec.inputs_filled_by("21893-3"), ["pnodes"]);
        assert!(spec.inputs_filled_by("2160-0").is_empty());
    }

    #[test]
    fn observation_codes_are_listed_only_when_every_observation_is_read_by_code() {
        let mut spec = default_spec();
        // The default model sees an event in a disease-status answer, whatever the code.
        assert_eq!(spec.observation_codes(), None);
        spec.population = None;
        let codes = spec.observation_codes().unwrap();
        for code in [
            "21889-1",
            "21893-3",
            "33732-9",
            "161712005",
            "31207-4",
            "14130-9",
        ] {
            assert!(codes.iter().any(|c| c == code), "{code} in {codes:?}");
        }
    }
}
