//! The inputs a model declares in its manifest: which clinical facts, which laboratory results
//! (LOINC codes, the unit it was trained on, its training mean and standard deviation, how far
//! back a result may be), which genes, and the embeddings (notes, imaging) with their encoder
//! and size. The feature builder fills exactly these, in this order.
//!
//! ```toml
//! [clinical]
//! age = { mean = 53.1, sd = 10.1 }
//! sex = true
//! stage = true
//! markers = [{ name = "er_positive", loinc = ["85337-4", "16112-5"] }]
//!
//! [[labs]]
//! name = "creatinine"
//! loinc = ["2160-0", "14682-9"]
//! unit = "mg/dL"
//! molar_mass = 113.12
//! lookback_days = 180
//! mean = 0.9
//! sd = 0.25
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

use std::collections::BTreeSet;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub clinical: Option<ClinicalSpec>,
    #[serde(default)]
    pub labs: Vec<LabSpec>,
    pub genomics: Option<GenomicsSpec>,
    pub notes: Option<EmbeddingSpec>,
    pub imaging: Option<EmbeddingSpec>,
}

/// Training statistics: a value enters the model as `(value - mean) / sd`.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    pub mean: f64,
    pub sd: f64,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClinicalSpec {
    /// Age in years at the time of the prediction, normalised by these statistics.
    pub age: Option<Stats>,
    /// Administrative sex, one-hot (`sex_female`, `sex_male`).
    #[serde(default)]
    pub sex: bool,
    /// TNM stage group, one-hot `stage_0` … `stage_4` (the latest stage group recorded).
    #[serde(default)]
    pub stage: bool,
    /// Positive (1) or negative (0) results, the latest of any of their codes.
    #[serde(default)]
    pub markers: Vec<MarkerSpec>,
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
    /// The UCUM unit the model was trained on; values in other units are converted.
    pub unit: String,
    /// g/mol of the analyte, for results reported in moles where the model uses mass (or
    /// the reverse).
    pub molar_mass: Option<f64>,
    /// Oldest result used, in days before the prediction.
    #[serde(default = "LabSpec::default_lookback_days")]
    pub lookback_days: u32,
    pub mean: f64,
    pub sd: f64,
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

impl InputSpec {
    /// Checks what serde cannot: names unique, statistics usable, codes given.
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
        let usable = |what: &str, stats: Stats| {
            if stats.mean.is_finite() && stats.sd.is_finite() && stats.sd > 0.0 {
                Ok(())
            } else {
                Err(SpecError(format!(
                    "{what}: the mean must be finite and the standard deviation positive"
                )))
            }
        };
        if let Some(clinical) = &self.clinical {
            if let Some(age) = clinical.age {
                usable("age", age)?;
            }
            for marker in &clinical.markers {
                unique(&marker.name)?;
                if marker.loinc.is_empty() {
                    return Err(SpecError(format!(
                        "marker `{}` has no LOINC code",
                        marker.name
                    )));
                }
            }
        }
        for lab in &self.labs {
            unique(&lab.name)?;
            usable(
                &lab.name,
                Stats {
                    mean: lab.mean,
                    sd: lab.sd,
                },
            )?;
            if lab.loinc.is_empty() {
                return Err(SpecError(format!("lab `{}` has no LOINC code", lab.name)));
            }
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
        Ok(())
    }
}
