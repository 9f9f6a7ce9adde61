//! `$risk-assessment`: what the service knows about a patient (the resources FHIR and HL7 feeds
//! stored, the DICOM studies it received and encoded) becomes the active model's inputs through
//! its input spec; the model predicts with its explanation; the prediction is filed as an
//! Observation per score, a RiskAssessment, a DiagnosticReport and a Provenance, with the model
//! as a Device. The ids of those resources derive from a digest of the model's weights and of
//! every input (resource versions and feature values), so that asking again with nothing
//! changed returns the report already filed instead of a duplicate.

use std::path::Path;

use serde_json::Value;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::monitoring::InputSnapshot;
use super::risk_clock::{Clock, horizon_risks};
use super::risk_inputs::AssessmentInputs;
use super::risk_view::ViewInputs;
use super::{Pipeline, PipelineError};
use crate::domain::{Horizon, IdError, ResourceId, ResourceType, TimeUnit};
use crate::features::{FeatureSet, PatientContext, build_features};
use crate::fusion::{Familiarity, Inputs, Model, PackageError, PredictError};
use crate::metrics::{self, METRICS};
use crate::report::ReportError;
use crate::report::risk::{
    AssessmentContent, AssessmentIds, ModelDescription, Unfilled, assessment_resources,
};
use crate::store::{ModelInputs, StoreError};
use crate::telemetry::spawn_blocking_with_tracing;

/// A model the service serves: a bundle with an input spec, and how it is named in FHIR.
pub struct RiskModel {
    pub model: Model,
    pub description: ModelDescription,
    /// The model card (Markdown) shipped beside the bundle, when there is one.
    pub card: Option<String>,
    /// The same card as data (`model-card.json`), when there is one.
    pub card_data: Option<Value>,
}

impl std::fmt::Debug for RiskModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RiskModel")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RiskModelError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("{0}: the model has no input spec, so its inputs cannot be read from FHIR")]
    NoInputSpec(String),
}

impl RiskModel {
    /// Loads a bundle (checksum and layout checked) that the service can fill from FHIR.
    pub fn load(dir: &Path) -> Result<Self, RiskModelError> {
        let mut model = Self::describe(Model::load(dir)?, dir)?;
        model.card = std::fs::read_to_string(dir.join("model-card.md")).ok();
        model.card_data = std::fs::read_to_string(dir.join("model-card.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok());
        Ok(model)
    }

    /// The default model as it was built into the binary (`models/risk/gbsg2-recurrence`),
    /// for a service started outside the repository; the same checks as a bundle on disk.
    pub fn built_in_default() -> Result<Self, RiskModelError> {
        let dir = Path::new("built-in:models/risk/gbsg2-recurrence");
        let model = Model::from_package(
            dir,
            include_str!("../../models/risk/gbsg2-recurrence/manifest.json"),
            include_bytes!("../../models/risk/gbsg2-recurrence/model.safetensors"),
        )?;
        let mut model = Self::describe(model, dir)?;
        model.card = Some(include_str!("../../models/risk/gbsg2-recurrence/model-card.md").into());
        model.card_data = serde_json::from_str(include_str!(
            "../../models/risk/gbsg2-recurrence/model-card.json"
        ))
        .ok();
        Ok(model)
    }

    fn describe(model: Model, dir: &Path) -> Result<Self, RiskModelError> {
        if model.manifest.inputs.is_none() {
            return Err(RiskModelError::NoInputSpec(dir.display().to_string()));
        }
        let sha = model.manifest.weights_sha256.clone();
        let device_id = ResourceId::parse(&format!("model-{}", &sha[..sha.len().min(40)]))
            .unwrap_or_else(|_| ResourceId::generate());
        let description = ModelDescription {
            device_id,
            name: model.manifest.name.clone(),
            version: model.manifest.version.clone(),
            weights_sha256: sha,
        };
        Ok(Self {
            model,
            description,
            card: None,
            card_data: None,
        })
    }

    /// The outcome as the service's code system names it.
    fn outcome(&self) -> (String, String) {
        match self
            .model
            .manifest
            .inputs
            .as_ref()
            .and_then(|s| s.outcome.as_ref())
        {
            Some(o) => (o.code.clone(), o.display.clone()),
            None => (
                "event".into(),
                format!("Event ({})", self.model.manifest.outcome.event_column),
            ),
        }
    }
}

/// What the caller asked for.
#[derive(Debug, Clone)]
pub struct AssessmentRequest {
    pub patient: ResourceId,
    /// `name` or `name|version` of the model; none: the active one.
    pub model: Option<String>,
    /// A Study Instance UID or `ImagingStudy/{id}`; none: the patient's latest.
    pub study: Option<String>,
    /// Horizons, each one the model predicts at; none: all of the model's.
    pub horizons: Vec<Horizon>,
}

impl AssessmentRequest {
    /// The request as JSON, to record an asynchronous one (ids and parameters only).
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// The request as a JSON object (see [`AssessmentRequest::to_json`]).
    pub fn to_value(&self) -> Value {
        serde_json::json!({
            "patient": self.patient.as_ref(),
            "model": self.model,
            "study": self.study,
            "horizons": self.horizons.iter().map(Horizon::to_string).collect::<Vec<_>>(),
        })
    }

    /// A request recorded by [`AssessmentRequest::to_json`].
    pub fn from_json(text: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(text).ok()?;
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            patient: ResourceId::parse(value.get("patient")?.as_str()?).ok()?,
            model: text("model"),
            study: text("study"),
            horizons: match value.get("horizons") {
                Some(horizons) => horizons
                    .as_array()?
                    .iter()
                    .map(|h| Horizon::parse(h.as_str()?, None).ok())
                    .collect::<Option<_>>()?,
                // As recorded before horizons had units: days.
                None => value
                    .get("horizons_days")?
                    .as_array()?
                    .iter()
                    .map(|d| Horizon::new(d.as_f64()?, TimeUnit::Days).ok())
                    .collect::<Option<_>>()?,
            },
        })
    }
}

/// An assessment as filed: its resources (type, id, JSON) and the warnings that go with it.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub resources: Vec<(ResourceType, ResourceId, String)>,
    pub warnings: Vec<String>,
    /// false when the same assessment had been filed before and was returned as it was.
    pub created: bool,
    /// What the model said and why (the same whether filed now or before).
    pub content: Box<AssessmentContent>,
}

#[derive(Debug, thiserror::Error)]
pub enum AssessmentError {
    #[error("no risk model is loaded")]
    NoModel,
    #[error("the model `{asked}` is not loaded (the service has `{loaded}`)")]
    UnknownModel { asked: String, loaded: String },
    #[error("the model does not predict at {asked}; its horizons are {offered}")]
    UnknownHorizon { asked: String, offered: String },
    #[error("the imaging study `{0}` is not a Study Instance UID or ImagingStudy reference")]
    BadStudy(String),
    #[error("no usable inputs for the model: {0}")]
    NoInputs(String),
    #[error(
        "the model is not made for this patient: {}{}",
        reasons.join("; "),
        if record_warnings.is_empty() { String::new() } else { format!(" (as far as the record read shows: {})", record_warnings.join("; ")) }
    )]
    OutsidePopulation {
        reasons: Vec<String>,
        /// What limited the record read (an EHR that did not answer).
        record_warnings: Vec<String>,
    },
    #[error("nothing the model can predict: {}", reasons.join("; "))]
    BeyondFollowUp { reasons: Vec<String> },
    #[error(transparent)]
    Predict(#[from] PredictError),
    #[error("an assessment id could not be made: {0}")]
    Ids(IdError),
}

impl Pipeline {
    /// Assesses `request.patient` with the active model, from what this service holds and what
    /// `inputs` names, and files the result.
    pub async fn assess_risk(
        &self,
        request: &AssessmentRequest,
        inputs: AssessmentInputs,
    ) -> Result<Assessment, PipelineError> {
        let risk = self.risk_model().ok_or(AssessmentError::NoModel)?;
        let started = std::time::Instant::now();
        let answer = self.assess_with(&risk, request, inputs).await;
        let d = &risk.description;
        let outcome = match &answer {
            Ok(a) if a.created => "filed",
            Ok(_) => "reused",
            Err(PipelineError::Assessment(_)) => "refused",
            Err(_) => "failed",
        };
        METRICS
            .assessments
            .get_or_create(&metrics::outcome(&d.name, &d.version, outcome))
            .inc();
        if answer.is_ok() {
            METRICS
                .assessment_duration
                .get_or_create(&metrics::model(&d.name, &d.version))
                .observe(started.elapsed().as_secs_f64());
        }
        answer
    }

    async fn assess_with(
        &self,
        risk: &Arc<RiskModel>,
        request: &AssessmentRequest,
        inputs: AssessmentInputs,
    ) -> Result<Assessment, PipelineError> {
        let risk = Arc::clone(risk);
        check_model_name(&risk, request.model.as_deref())?;
        let horizons = select_horizons(&risk, &request.horizons)?;

        let record = self.gather_record(&request.patient, inputs.source).await?;
        let context = PatientContext::from_resources(&record.patient, record.resources.iter());
        let spec = risk
            .model
            .manifest
            .inputs
            .as_ref()
            .ok_or(AssessmentError::NoModel)?;
        let clock = self
            .assessment_clock(&risk, spec, &context, &request.patient, &record.warnings)
            .await?;
        let now = clock.now;
        let mut warnings = record.warnings.clone();
        let (embeddings, study) = self
            .assessment_embeddings(
                spec,
                &context,
                request.study.as_deref(),
                inputs.encode_now,
                clock.as_of().at,
                &mut warnings,
            )
            .await?;
        let mut features = build_features(spec, &context, &embeddings, clock.as_of());
        let (inputs, familiarity) = model_inputs(&risk, spec, &mut features)?;
        let model = Arc::clone(&risk);
        let forward = std::time::Instant::now();
        let explained = spawn_blocking_with_tracing(move || model.model.predict(&inputs, true))
            .await
            .map_err(PipelineError::Blocking)?
            .map_err(AssessmentError::from)?;
        METRICS
            .inference_duration
            .get_or_create(&metrics::model(
                &risk.description.name,
                &risk.description.version,
            ))
            .observe(forward.elapsed().as_secs_f64());
        let Some(prediction) = explained.into_iter().next() else {
            return Err(
                AssessmentError::NoInputs("the model returned no prediction".into()).into(),
            );
        };

        // Every input resource, at the version read, the patient first.
        let mut basis: Vec<String> = Vec::new();
        let patient_source = format!("Patient/{}", request.patient);
        let sources = std::iter::once(&patient_source)
            .chain(features.modalities.iter().flat_map(|m| &m.sources));
        for source in sources {
            if let Some(reference) = record.references.get(source)
                && !basis.contains(reference)
            {
                basis.push(reference.clone());
            }
        }
        if let Some((id, version)) = &study {
            basis.push(format!("ImagingStudy/{id}/_history/{version}"));
        }
        for missing in &prediction.missing {
            let reasons: Vec<String> = features
                .unfilled
                .iter()
                .filter(|u| u.modality == *missing)
                .map(|u| format!("{}: {}", u.feature, u.reason))
                .collect();
            warnings.push(format!(
                "the {missing} modality is missing ({}); the prediction was made without it",
                reasons.join("; ")
            ));
        }
        // Facts missing from a modality that is there: the model treats them as unknown.
        let partial: Vec<String> = features
            .unfilled
            .iter()
            .filter(|u| !prediction.missing.contains(&u.modality))
            .map(|u| format!("{}: {}", u.feature, u.reason))
            .collect();
        if !partial.is_empty() {
            warnings.push(format!(
                "inputs not on record, taken as unknown: {}",
                partial.join("; ")
            ));
        }
        for note in &features.notes {
            warnings.push(format!("an input derived, not recorded: {note}"));
        }

        let (horizon_risks, mut cautions) = horizon_risks(&risk, &prediction, &horizons, &clock)?;
        cautions.extend(familiarity.cautions());
        warnings.extend(cautions.iter().cloned());
        let key = assessment_key(&risk.description, &basis, &features, &horizons, &clock);
        let short = &key[..40];
        let horizon_count = horizon_risks.len();
        let observation_count =
            horizon_count + 1 + usize::from(prediction.triage_probability.is_some());
        let ids = assessment_ids(short, observation_count).map_err(AssessmentError::Ids)?;
        let content = AssessmentContent {
            patient: request.patient.clone(),
            model: risk.description.clone(),
            outcome: risk.outcome(),
            effective: clock
                .as_of()
                .at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            issued: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            log_hazard_ratio: prediction.risk,
            horizons: horizon_risks,
            origin: clock.describe(),
            cautions,
            outside_training: familiarity.outside_training(),
            triage: prediction.triage_probability.zip(prediction.urgent),
            contributions: prediction
                .modalities
                .iter()
                .filter(|m| m.present)
                .map(|m| (m.modality.to_string(), m.weight, m.contribution))
                .collect(),
            top_features: prediction
                .top_features
                .iter()
                .map(|f| (f.feature.clone(), f.attribution))
                .collect(),
            missing: prediction
                .missing
                .iter()
                .map(|m| {
                    let reasons: Vec<String> = features
                        .unfilled
                        .iter()
                        .filter(|u| u.modality == *m)
                        .map(|u| format!("{}: {}", u.feature, u.reason))
                        .collect();
                    (m.to_string(), reasons.join("; "))
                })
                .collect(),
            unfilled: features
                .unfilled
                .iter()
                .map(|u| Unfilled {
                    feature: u.feature.clone(),
                    modality: u.modality.to_string(),
                    reason: u.reason.clone(),
                })
                .collect(),
            basis,
            imaging_study: study.as_ref().map(|(id, _)| id.clone()),
            key,
        };
        let resources = assessment_resources(&content, &ids);
        let view = self.assessment_view(&ViewInputs {
            risk: &risk,
            content: &content,
            context: &context,
            features: &features,
            clock: &clock,
            report: ids.report.as_ref(),
            references: &record.references,
        });
        let view = serde_json::to_string(&view).map_err(|source| ReportError::Serialise {
            resource: "the assessment's explanation",
            source,
        })?;
        let mut inputs = InputSnapshot::of(&risk.model, &features, content.log_hazard_ratio);
        if let Some((id, _)) = &study {
            inputs.acquisition = self.acquisition(id).await;
        }
        let beside = FiledBeside {
            view,
            inputs: serde_json::to_string(&inputs).unwrap_or_default(),
            patient_copy: record.patient_copy,
        };
        let assessment = self
            .file_assessment(&risk, &ids, resources, warnings, content, beside)
            .await?;
        // Shadows score beside the answer, not before it: the clinician never waits for a
        // model nobody is shown.
        if assessment.created && self.models().shadows().next().is_some() {
            let pipeline = self.clone();
            let (report, patient, study) = (
                ids.report.clone(),
                request.patient.clone(),
                request.study.clone(),
            );
            crate::telemetry::spawn_with_tracing(async move {
                pipeline
                    .score_shadows(&report, &patient, &context, study.as_deref())
                    .await;
            });
        }
        Ok(assessment)
    }

    /// Writes the assessment's resources in one transaction, unless the same assessment was
    /// filed before: then returns what was filed.
    async fn file_assessment(
        &self,
        risk: &RiskModel,
        ids: &AssessmentIds,
        resources: crate::report::risk::AssessmentResources,
        warnings: Vec<String>,
        content: AssessmentContent,
        beside: FiledBeside,
    ) -> Result<Assessment, PipelineError> {
        let mut tx = self.store.begin().await?;
        // The copy of an EHR's Patient, unless another assessment filed it meanwhile: one
        // transaction (one commit to wait for) for a first assessment of such a patient.
        if let Some(copy) = beside.patient_copy
            && tx
                .current_version(ResourceType::Patient, &content.patient)
                .await?
                .is_none()
        {
            tx.write(ResourceType::Patient, &content.patient, copy, None)
                .await?;
        }
        let filed = matches!(
            tx.current_version(ResourceType::DiagnosticReport, &ids.report)
                .await?,
            Some((_, false))
        );
        let mut order: Vec<(ResourceType, ResourceId, Option<Value>)> = Vec::new();
        order.push((
            ResourceType::Device,
            risk.description.device_id.clone(),
            Some(resources.device),
        ));
        for (id, o) in ids.observations.iter().zip(resources.observations) {
            order.push((ResourceType::Observation, id.clone(), Some(o)));
        }
        order.push((
            ResourceType::RiskAssessment,
            ids.risk_assessment.clone(),
            Some(resources.risk_assessment),
        ));
        order.push((
            ResourceType::DiagnosticReport,
            ids.report.clone(),
            Some(resources.report),
        ));
        order.push((
            ResourceType::Provenance,
            ids.provenance.clone(),
            Some(resources.provenance),
        ));
        let mut out = Vec::with_capacity(order.len());
        for (t, id, resource) in order {
            // Filed before, or the model's Device (shared by every assessment): kept as it is.
            // Otherwise nothing of this assessment exists yet: written without a look first.
            let existing = if filed || t == ResourceType::Device {
                match tx.read(t, &id).await {
                    Ok(stored) => Some(stored),
                    Err(StoreError::NotFound { .. } | StoreError::Gone { .. }) => None,
                    Err(e) => return Err(e.into()),
                }
            } else {
                None
            };
            let stored = match existing {
                Some(stored) => stored,
                None => {
                    let Some(Value::Object(map)) = resource else {
                        continue;
                    };
                    tx.write(t, &id, map, None).await?
                }
            };
            if let Some(content) = stored.content {
                out.push((t, id, content));
            }
        }
        tx.keep_assessment_view(ids.report.as_ref(), content.patient.as_ref(), &beside.view)
            .await?;
        tx.keep_model_inputs(&ModelInputs {
            report: ids.report.to_string(),
            model: risk.description.name.clone(),
            version: risk.description.version.clone(),
            role: "active".into(),
            created_ms: 0,
            content: beside.inputs,
        })
        .await?;
        tx.commit().await?;
        tracing::info!(
            patient_resources = out.len(),
            created = !filed,
            model = %risk.description.name,
            "risk assessment filed"
        );
        Ok(Assessment {
            resources: out,
            warnings,
            created: !filed,
            content: Box::new(content),
        })
    }
}

/// What an assessment's transaction writes besides its resources.
struct FiledBeside {
    /// The explanation the app shows (JSON).
    view: String,
    /// What the model was given, for drift (JSON of [`InputSnapshot`]).
    inputs: String,
    /// The copy of a Patient known only to the EHR.
    patient_copy: Option<serde_json::Map<String, Value>>,
}

/// What `risk` is given of `features`, and how familiar they are: compared with the training
/// data first, a level no training patient had is given to the model as unknown (the caller
/// says so, from the familiarity). Refused when an input the model requires is missing, or
/// when nothing it takes is on record.
pub(super) fn model_inputs(
    risk: &RiskModel,
    spec: &crate::features::InputSpec,
    features: &mut FeatureSet,
) -> Result<(Inputs, Familiarity), AssessmentError> {
    let familiarity = risk.model.familiarity(features);
    for column in &familiarity.unseen_levels {
        features.forget_column(column);
    }
    let inputs =
        Inputs::from_feature_sets(&risk.model.manifest.layout, std::slice::from_ref(features))
            .map_err(|e| AssessmentError::NoInputs(e.to_string()))?;
    let refused: Vec<String> = features
        .unfilled
        .iter()
        .filter(|u| spec.required.contains(&u.feature))
        .map(|u| format!("{}: {}", u.feature, u.reason))
        .collect();
    if !refused.is_empty() {
        return Err(AssessmentError::NoInputs(format!(
            "the model does not answer without {}",
            refused.join("; ")
        )));
    }
    if !inputs.any_present(0) {
        return Err(AssessmentError::NoInputs(unfilled_summary(features)));
    }
    Ok((inputs, familiarity))
}

fn check_model_name(risk: &RiskModel, asked: Option<&str>) -> Result<(), AssessmentError> {
    let Some(asked) = asked else { return Ok(()) };
    let d = &risk.description;
    let (name, version) = match asked.split_once('|') {
        Some((name, version)) => (name, Some(version)),
        None => (asked, None),
    };
    if name == d.name && version.is_none_or(|v| v == d.version) {
        Ok(())
    } else {
        Err(AssessmentError::UnknownModel {
            asked: asked.to_owned(),
            loaded: format!("{}|{}", d.name, d.version),
        })
    }
}

/// Indices of the model's horizons asked for (all when none are); a horizon within a day and a
/// half of one of the model's is that one.
fn select_horizons(risk: &RiskModel, asked: &[Horizon]) -> Result<Vec<usize>, AssessmentError> {
    let horizons = &risk.model.manifest.horizons;
    if asked.is_empty() {
        return Ok((0..horizons.len()).collect());
    }
    let unit = risk.model.manifest.outcome.time_unit;
    let tolerance = 1.5 / unit.days();
    asked
        .iter()
        .map(|horizon| {
            let time = horizon.in_unit(unit);
            horizons
                .iter()
                .position(|h| (h.time - time).abs() <= tolerance)
                .ok_or_else(|| AssessmentError::UnknownHorizon {
                    asked: format!("{} days", horizon.days()),
                    offered: horizons
                        .iter()
                        .map(|h| h.label.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        })
        .collect()
}

/// The ids of an assessment's resources, from its key: `risk-{key}` for the report, the
/// RiskAssessment and the Provenance (different types), `risk-{key}-{n}` for the Observations.
fn assessment_ids(key: &str, observations: usize) -> Result<AssessmentIds, IdError> {
    let id = |suffix: &str| ResourceId::parse(&format!("risk-{key}{suffix}"));
    Ok(AssessmentIds {
        report: id("")?,
        risk_assessment: id("")?,
        provenance: id("")?,
        observations: (0..observations)
            .map(|i| id(&format!("-{i}")))
            .collect::<Result<_, _>>()?,
    })
}

/// What could not be filled, feature by feature.
fn unfilled_summary(features: &FeatureSet) -> String {
    if features.unfilled.is_empty() {
        return "nothing on record that the model takes".into();
    }
    features
        .unfilled
        .iter()
        .map(|u| format!("{} ({}): {}", u.feature, u.modality, u.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A digest of the model and everything it was given: the same key means the same assessment.
fn assessment_key(
    model: &ModelDescription,
    basis: &[String],
    features: &FeatureSet,
    horizons: &[usize],
    clock: &Clock,
) -> String {
    let mut hash = Sha256::new();
    hash.update(model.weights_sha256.as_bytes());
    for b in basis {
        hash.update(b.as_bytes());
        hash.update([0]);
    }
    for modality in &features.modalities {
        for ((name, value), known) in modality
            .names
            .iter()
            .zip(&modality.values)
            .zip(&modality.mask)
        {
            hash.update(name.as_bytes());
            hash.update(value.to_le_bytes());
            hash.update([u8::from(*known)]);
        }
    }
    for h in horizons {
        hash.update((*h as u64).to_le_bytes());
    }
    // Probabilities conditional on the time since the origin change from day to day.
    if clock.eligible.is_some() {
        hash.update(clock.now.format("%Y-%m-%d").to_string().as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
