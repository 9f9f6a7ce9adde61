//! The resources a risk assessment files and returns: one Observation per score (the
//! probability of the outcome by each horizon, the log hazard ratio, the urgent-finding
//! probability), a RiskAssessment with a prediction per horizon and its reasons, a
//! DiagnosticReport grouping the Observations, a Provenance naming the model and the inputs, and
//! the model itself as a Device. Every AI-made resource carries the security label AIAST. Written
//! as JSON: the shapes are fixed here and checked against the profiles in `fhir-profiles/` by
//! the tests.

use serde_json::{Value, json};

use crate::domain::ResourceId;

/// Canonical base of the service's profiles and code systems (`fhir-profiles/`).
pub const CANONICAL: &str = "https://prognostics.example.org/fhir";
/// The service's own codes: outcomes, scores, methods (`fhir-profiles/CodeSystem-prognostics.json`).
pub const CODE_SYSTEM: &str = "https://prognostics.example.org/fhir/CodeSystem/prognostics";
/// `Identifier.system` of a model's weights digest.
pub const MODEL_DIGEST_SYSTEM: &str = "https://prognostics.example.org/fhir/sid/model-sha256";
/// `Identifier.system` of an assessment's key (a digest of the model and its inputs).
pub const ASSESSMENT_KEY_SYSTEM: &str =
    "https://prognostics.example.org/fhir/sid/risk-assessment-key";

const UCUM: &str = "http://unitsofmeasure.org";
const SECURITY: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";
const RISK_PROBABILITY: &str = "http://terminology.hl7.org/CodeSystem/risk-probability";
const REPORT_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
const PARTICIPANT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
const DATA_OPERATION: &str = "http://terminology.hl7.org/CodeSystem/v3-DataOperation";

pub fn profile(name: &str) -> String {
    format!("{CANONICAL}/StructureDefinition/{name}")
}

fn meta(profile_name: &str) -> Value {
    json!({
        "profile": [profile(profile_name)],
        "security": [{"system": SECURITY, "code": "AIAST", "display": "Artificial Intelligence asserted"}],
    })
}

fn code(code: &str, display: &str) -> Value {
    json!({"coding": [{"system": CODE_SYSTEM, "code": code, "display": display}]})
}

fn reference(t: &str, id: &ResourceId) -> Value {
    json!({"reference": format!("{t}/{id}")})
}

/// The model, as the Device that made the assessment.
#[derive(Debug, Clone)]
pub struct ModelDescription {
    pub device_id: ResourceId,
    pub name: String,
    pub version: String,
    /// sha256 of the weights, hex.
    pub weights_sha256: String,
}

/// A horizon's probability.
#[derive(Debug, Clone)]
pub struct HorizonRisk {
    pub label: String,
    /// In `unit` (UCUM: `d`, `mo`, `a`).
    pub time: f64,
    pub unit: &'static str,
    pub probability: f64,
    /// The calendar dates it spans: from the assessment to the horizon (`YYYY-MM-DD`).
    pub period: (String, String),
}

/// What the model said and why, in words and numbers the resources carry.
#[derive(Debug, Clone)]
pub struct AssessmentContent {
    pub patient: ResourceId,
    pub model: ModelDescription,
    /// The outcome (code in the service's code system, display).
    pub outcome: (String, String),
    /// The moment the features were built for (RFC 3339).
    pub effective: String,
    /// When the assessment was made (RFC 3339).
    pub issued: String,
    pub log_hazard_ratio: f64,
    pub horizons: Vec<HorizonRisk>,
    /// From when the risk counts, in words ("Counted from diagnosis on 2018-03-16 …"); none
    /// for a model without a time origin.
    pub origin: Option<String>,
    /// What lies outside the model's experience or cannot be told, in words.
    pub cautions: Vec<String>,
    /// An input lies outside the training data: no risk band, but that.
    pub outside_training: bool,
    /// (probability, flagged urgent)
    pub triage: Option<(f64, bool)>,
    /// (modality, gate weight, contribution to the log hazard when it can be told apart)
    pub contributions: Vec<(String, f64, Option<f64>)>,
    /// (feature, attribution to the log hazard)
    pub top_features: Vec<(String, f64)>,
    /// (modality, why)
    pub missing: Vec<(String, String)>,
    /// Every input the spec names that the record did not fill.
    pub unfilled: Vec<Unfilled>,
    /// The input resources (`Type/id/_history/v`).
    pub basis: Vec<String>,
    pub imaging_study: Option<ResourceId>,
    /// The digest of the model and inputs: the same key, the same assessment.
    pub key: String,
}

/// An input the record did not fill, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfilled {
    pub feature: String,
    pub modality: String,
    pub reason: String,
}

/// The ids the assessment's resources take, derived from its key.
#[derive(Debug, Clone)]
pub struct AssessmentIds {
    pub report: ResourceId,
    pub risk_assessment: ResourceId,
    pub provenance: ResourceId,
    pub observations: Vec<ResourceId>,
}

/// The resources of one assessment, in the order they are filed.
#[derive(Debug, Clone)]
pub struct AssessmentResources {
    pub device: Value,
    pub observations: Vec<Value>,
    pub risk_assessment: Value,
    pub report: Value,
    pub provenance: Value,
}

/// risk-probability (the FHIR code system) for a probability: below 10 % low, below 30 %
/// moderate, else high.
pub fn qualitative_risk(probability: f64) -> (&'static str, &'static str) {
    if probability < 0.10 {
        ("low", "Low likelihood")
    } else if probability < 0.30 {
        ("moderate", "Moderate likelihood")
    } else {
        ("high", "High likelihood")
    }
}

fn percent(p: f64) -> f64 {
    (p * 1000.0).round() / 10.0
}

fn signed(x: f64) -> String {
    format!("{x:+.2}")
}

/// The device resource of a model.
pub fn model_device(model: &ModelDescription) -> Value {
    json!({
        "resourceType": "Device",
        "id": model.device_id.to_string(),
        "meta": {"profile": [profile("prognostics-model-device")]},
        "identifier": [{"system": MODEL_DIGEST_SYSTEM, "value": model.weights_sha256}],
        "status": "active",
        "deviceName": [{"name": model.name, "type": "model-name"}],
        "type": code("prognostic-model", "Prognostic risk model"),
        "version": [{"value": model.version}],
    })
}

/// Builds every resource of an assessment.
pub fn assessment_resources(c: &AssessmentContent, ids: &AssessmentIds) -> AssessmentResources {
    let subject = reference("Patient", &c.patient);
    let device = reference("Device", &c.model.device_id);
    let outcome = code(&c.outcome.0, &c.outcome.1);
    let observation = |id: &ResourceId, score: Value, value: Value, components: Vec<Value>| {
        let mut o = json!({
            "resourceType": "Observation",
            "id": id.to_string(),
            "meta": meta("prognostics-risk-observation"),
            "status": "preliminary",
            "code": score,
            "subject": subject,
            "effectiveDateTime": c.effective,
            "issued": c.issued,
            "device": device,
            "valueQuantity": value,
        });
        if !components.is_empty() {
            o["component"] = Value::Array(components);
        }
        o
    };
    let mut observations = Vec::new();
    let mut ids_iter = ids.observations.iter();
    for h in &c.horizons {
        let Some(id) = ids_iter.next() else { break };
        observations.push(observation(
            id,
            code("event-probability", "Predicted probability of the outcome by the horizon"),
            json!({"value": percent(h.probability), "unit": "%", "system": UCUM, "code": "%"}),
            vec![
                json!({"code": code("outcome", "Outcome"), "valueCodeableConcept": outcome}),
                json!({"code": code("horizon", "Horizon"),
                    "valueQuantity": {"value": h.time, "unit": h.unit, "system": UCUM, "code": h.unit}}),
            ],
        ));
    }
    if let Some(id) = ids_iter.next() {
        observations.push(observation(
            id,
            code("log-hazard-ratio", "Log hazard ratio against the training cohort's baseline"),
            json!({"value": (c.log_hazard_ratio * 1e4).round() / 1e4, "unit": "1", "system": UCUM, "code": "1"}),
            vec![json!({"code": code("outcome", "Outcome"), "valueCodeableConcept": outcome})],
        ));
    }
    if let (Some((probability, urgent)), Some(id)) = (c.triage, ids_iter.next()) {
        observations.push(observation(
            id,
            code(
                "urgent-finding-probability",
                "Probability of an urgent finding",
            ),
            json!({"value": percent(probability), "unit": "%", "system": UCUM, "code": "%"}),
            vec![json!({"code": code("urgent", "Flagged urgent"), "valueBoolean": urgent})],
        ));
    }

    let rationale = rationale(c);
    let predictions: Vec<Value> = c
        .horizons
        .iter()
        .map(|h| {
            json!({
                "outcome": outcome,
                "probabilityDecimal": (h.probability * 1e4).round() / 1e4,
                "whenPeriod": {"start": h.period.0, "end": h.period.1},
                "qualitativeRisk": qualitative(c, h.probability),
                "rationale": rationale,
            })
        })
        .collect();
    let basis: Vec<Value> = c.basis.iter().map(|r| json!({"reference": r})).collect();
    let mut risk_assessment = json!({
        "resourceType": "RiskAssessment",
        "id": ids.risk_assessment.to_string(),
        "meta": meta("prognostics-risk-assessment"),
        "identifier": [{"system": ASSESSMENT_KEY_SYSTEM, "value": c.key}],
        "status": "preliminary",
        "method": {
            "coding": [{"system": CODE_SYSTEM, "code": "multimodal-fusion-model", "display": "Multimodal fusion survival model"}],
            "text": format!("{} {}", c.model.name, c.model.version),
        },
        "code": code("prognostic-risk", "Prognostic risk"),
        "subject": subject,
        "occurrenceDateTime": c.effective,
        "performer": device,
        "prediction": predictions,
    });
    if !basis.is_empty() {
        risk_assessment["basis"] = Value::Array(basis);
    }
    if !c.missing.is_empty() {
        risk_assessment["note"] = Value::Array(
            c.missing
                .iter()
                .map(|(m, why)| json!({"text": format!("Missing modality: {m} ({why})")}))
                .collect(),
        );
    }

    let last = c.horizons.last();
    let conclusion = conclusion(c);
    let mut report = json!({
        "resourceType": "DiagnosticReport",
        "id": ids.report.to_string(),
        "meta": meta("prognostics-risk-report"),
        "identifier": [{"system": ASSESSMENT_KEY_SYSTEM, "value": c.key}],
        "status": "preliminary",
        "category": [{"coding": [{"system": REPORT_CATEGORY, "code": "OTH", "display": "Other"}]},
                     code("prognostic-risk", "Prognostic risk")],
        "code": code("prognostic-risk-report", "Prognostic risk assessment report"),
        "subject": subject,
        "effectiveDateTime": c.effective,
        "issued": c.issued,
        "result": observations.iter().map(|o| json!({"reference": format!("Observation/{}", o["id"].as_str().unwrap_or_default())})).collect::<Vec<_>>(),
        "conclusion": conclusion,
    });
    if let Some(h) = last {
        report["conclusionCode"] = json!([qualitative(c, h.probability)]);
    }
    if let Some(study) = &c.imaging_study {
        report["imagingStudy"] = json!([reference("ImagingStudy", study)]);
    }

    let mut targets = vec![
        reference("DiagnosticReport", &ids.report),
        reference("RiskAssessment", &ids.risk_assessment),
    ];
    targets.extend(observations.iter().map(
        |o| json!({"reference": format!("Observation/{}", o["id"].as_str().unwrap_or_default())}),
    ));
    let mut provenance = json!({
        "resourceType": "Provenance",
        "id": ids.provenance.to_string(),
        "meta": {"profile": [profile("prognostics-risk-provenance")]},
        "target": targets,
        "recorded": c.issued,
        "activity": {"coding": [{"system": DATA_OPERATION, "code": "CREATE", "display": "create"}]},
        "agent": [{
            "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "assembler", "display": "Assembler"}]},
            "who": device,
        }],
    });
    if !c.basis.is_empty() {
        provenance["entity"] = Value::Array(
            c.basis
                .iter()
                .map(|r| json!({"role": "source", "what": {"reference": r}}))
                .collect(),
        );
    }

    AssessmentResources {
        device: model_device(&c.model),
        observations,
        risk_assessment,
        report,
        provenance,
    }
}

/// The qualitative risk: its band, or for a patient outside the training data that (in words,
/// no band: the model's probability bands do not hold there).
fn qualitative(c: &AssessmentContent, probability: f64) -> Value {
    if c.outside_training {
        json!({"text": OUTSIDE_TRAINING})
    } else {
        let (q, display) = qualitative_risk(probability);
        json!({"coding": [{"system": RISK_PROBABILITY, "code": q, "display": display}]})
    }
}

/// The qualitative risk of a patient unlike the training patients.
pub const OUTSIDE_TRAINING: &str = "Outside the model's training population";

/// Why: the time origin, each modality's contribution, the features that moved the risk most,
/// what was missing, and what the model has not seen.
fn rationale(c: &AssessmentContent) -> String {
    let mut parts = Vec::new();
    if let Some(origin) = &c.origin {
        parts.push(origin.clone());
    }
    if !c.contributions.is_empty() {
        let list: Vec<String> = c
            .contributions
            .iter()
            .map(|(m, weight, contribution)| match contribution {
                Some(c) => format!("{m} {} (weight {weight:.2})", signed(*c)),
                None => format!("{m} (weight {weight:.2})"),
            })
            .collect();
        parts.push(format!(
            "Modality contributions to the log hazard: {}.",
            list.join(", ")
        ));
    }
    if !c.top_features.is_empty() {
        let list: Vec<String> = c
            .top_features
            .iter()
            .map(|(f, a)| format!("{f} {}", signed(*a)))
            .collect();
        parts.push(format!(
            "Features that moved the risk most: {}.",
            list.join(", ")
        ));
    }
    if !c.missing.is_empty() {
        let list: Vec<&str> = c.missing.iter().map(|(m, _)| m.as_str()).collect();
        parts.push(format!("Missing modalities: {}.", list.join(", ")));
    }
    for caution in &c.cautions {
        parts.push(format!("Caution: {caution}."));
    }
    parts.join(" ")
}

fn conclusion(c: &AssessmentContent) -> String {
    let by: Vec<String> = c
        .horizons
        .iter()
        .map(|h| format!("{} % by {}", percent(h.probability), h.label))
        .collect();
    let mut text = format!(
        "Predicted probability of {}: {}",
        c.outcome.1.to_lowercase(),
        by.join(", ")
    );
    if let Some(h) = c.horizons.last() {
        if c.outside_training {
            text += " (outside the model's training population: no risk band)";
        } else {
            text += &format!(" ({} risk)", qualitative_risk(h.probability).0);
        }
    }
    text += &format!(". Model {} {}.", c.model.name, c.model.version);
    if let Some((p, urgent)) = c.triage {
        text += &format!(
            " Urgent finding: {} % ({}).",
            percent(p),
            if urgent { "flagged" } else { "not flagged" }
        );
    }
    if !c.missing.is_empty() {
        let list: Vec<&str> = c.missing.iter().map(|(m, _)| m.as_str()).collect();
        text += &format!(" Assessed without: {}.", list.join(", "));
    }
    if let Some(origin) = &c.origin {
        text += &format!(" {origin}");
    }
    for caution in &c.cautions {
        text += &format!(" Caution: {caution}.");
    }
    text
}
