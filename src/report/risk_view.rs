//! The explanation of one assessment as the SMART app shows it: the event-free curve from today
//! with the horizons and bands, each modality's part, the features that moved the risk with the
//! value, unit, date and resource each came from, and what was missing with the test that
//! would fill it. Kept beside the filed resources when the assessment is made (the model's
//! attributions cannot be read back from FHIR resources), and served as JSON.

use serde::{Deserialize, Serialize};

use super::risk::qualitative_risk;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssessmentView {
    /// The DiagnosticReport (and RiskAssessment) id.
    pub report: String,
    pub patient: String,
    pub issued: String,
    /// The moment the features describe (the index date).
    pub effective: String,
    pub model: ModelRef,
    pub outcome: Coded,
    /// How the time origin was chosen, in words.
    pub origin: Option<String>,
    pub horizons: Vec<HorizonView>,
    /// The probability of the event within `days` from the assessment, given none so far.
    pub curve: Vec<CurvePoint>,
    pub contributions: Vec<ContributionView>,
    pub features: Vec<FeatureView>,
    pub missing: Vec<MissingView>,
    pub cautions: Vec<String>,
    pub outside_training: bool,
    pub triage: Option<TriageView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coded {
    pub code: String,
    pub display: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HorizonView {
    pub label: String,
    /// Days from the assessment.
    pub days: f64,
    pub probability: f64,
    /// `low`, `moderate` or `high`.
    pub band: String,
    pub until: String,
}

impl HorizonView {
    pub fn new(label: String, days: f64, probability: f64, until: String) -> Self {
        Self {
            label,
            days,
            probability,
            band: qualitative_risk(probability).0.to_owned(),
            until,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub days: f64,
    pub probability: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContributionView {
    pub modality: String,
    /// The modality's share in the fusion, 0 to 1.
    pub weight: f64,
    /// Its contribution to the log hazard ratio, when known.
    pub contribution: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureView {
    /// As the model names it (`pnodes=4-9`, `tsize`).
    pub feature: String,
    /// Its attribution to the log hazard ratio (positive raises the risk).
    pub attribution: f64,
    /// The value as recorded, in words or digits.
    pub value: Option<String>,
    pub unit: Option<String>,
    /// When it was recorded or measured (a date).
    pub date: Option<String>,
    /// The resource it came from (`Observation/…`).
    pub source: Option<String>,
    /// That resource at the version read: `Observation/…/_history/n` when held here, its
    /// absolute URL when read from the EHR.
    pub reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissingView {
    pub feature: String,
    pub modality: String,
    pub reason: String,
    /// A test that would fill it (LOINC), when one does.
    pub test: Option<Coded>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TriageView {
    pub probability: f64,
    pub urgent: bool,
}
