//! What the CDS Hooks services need besides the assessment: the prefetch the active model asks
//! for and where a hook's record comes from (`cds_prefetch`: a complete prefetch, else the
//! client's `fhirServer` read with its `fhirAuthorization`, else what the service holds); the
//! orders that would fill what a record lacks; the cards shown (so that feedback, which names a
//! card by its uuid only, finds the patient, assessment, model and user); and the feedback
//! itself, filed as FHIR Basic resources beside the assessment. Feedback posted twice is filed
//! once.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Map, Value};

use super::cds_prefetch::{self, Prefetched};
use super::risk::RiskModel;
use super::risk_inputs::RecordSource;
use super::{Pipeline, PipelineError, digest_id};
use crate::domain::{ResourceId, ResourceType};
use crate::ehr::{Authorization, ClientSettings, EhrError, FhirClient, HttpClient};
use crate::error::ErrorKind;
use crate::features::InputSpec;
use crate::fhir::json::codes_of;
use crate::report::cds_card::{CardFeedback, CardShown, TestToOrder, feedback_resource};
use crate::report::risk::AssessmentContent;
use crate::store::ShownCard;

/// The time limit, retries and paging for reading a client's `fhirServer`: a card is due
/// within seconds.
const FHIR_SERVER: (Duration, u32, usize, usize) = (Duration::from_secs(10), 1, 20, 200);

/// The HTTP client for callers' FHIR servers, built once (not per hook call: building one
/// loads TLS roots).
static CALLER_SERVERS: LazyLock<Result<HttpClient, String>> =
    LazyLock::new(|| FhirClient::http_client(FHIR_SERVER.0).map_err(|e| e.to_string()));

/// Where a hook says the patient's record is.
#[derive(Debug, Clone)]
pub struct HookRecord {
    pub patient: ResourceId,
    pub prefetch: Option<Map<String, Value>>,
    pub fhir_server: Option<String>,
    /// `fhirAuthorization.access_token`.
    pub access_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CdsError {
    /// The hook request is wrong at `at`.
    #[error("{message}")]
    Request { at: String, message: String },
    /// The FHIR data the model needs cannot be had.
    #[error("{0}")]
    DataUnavailable(String),
    #[error("feedback[{index}]: no card {card} was shown by this service")]
    UnknownCard { index: usize, card: String },
    #[error(
        "feedback[{index}]: the card {card} was shown by the service `{shown_by}`, not this one"
    )]
    OtherService {
        index: usize,
        card: String,
        shown_by: String,
    },
}

impl CdsError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CdsError::DataUnavailable(_) => ErrorKind::PreconditionFailed,
            _ => ErrorKind::Invalid,
        }
    }

    pub fn expression(&self) -> Option<String> {
        match self {
            CdsError::Request { at, .. } => Some(at.clone()),
            CdsError::DataUnavailable(_) => None,
            CdsError::UnknownCard { index, .. } | CdsError::OtherService { index, .. } => {
                Some(format!("feedback[{index}].card"))
            }
        }
    }
}

/// The active model, held for its input spec.
struct ActiveSpec(Arc<RiskModel>);

impl std::ops::Deref for ActiveSpec {
    type Target = InputSpec;

    fn deref(&self) -> &InputSpec {
        static NONE: LazyLock<InputSpec> = LazyLock::new(InputSpec::default);
        // A loaded model always has its spec (`RiskModel::load` refuses one without).
        self.0.model.manifest.inputs.as_ref().unwrap_or(&NONE)
    }
}

/// The active model's input spec, for the CDS services.
fn spec_of(pipeline: &Pipeline) -> Option<ActiveSpec> {
    let model = pipeline.risk_model()?;
    model.model.manifest.inputs.as_ref()?;
    Some(ActiveSpec(model))
}

impl Pipeline {
    /// The prefetch templates of the active model (none without a model).
    pub fn cds_prefetch(&self) -> Option<Map<String, Value>> {
        spec_of(self).map(|spec| cds_prefetch::templates(&spec))
    }

    /// Where a hook's assessment reads the record: a complete prefetch; else the client's
    /// `fhirServer`, read with its token; else (nothing prefetched, no server) what this
    /// service holds. A prefetch that lacks what the model needs with no server to read it
    /// from, or a server that cannot be read, is [`CdsError::DataUnavailable`].
    pub async fn hook_record_source(
        &self,
        hook: HookRecord,
    ) -> Result<RecordSource, PipelineError> {
        let Some(spec) = spec_of(self) else {
            return Err(super::risk::AssessmentError::NoModel.into());
        };
        let prefetched = cds_prefetch::read(hook.prefetch.as_ref(), &spec, hook.patient.as_ref())?;
        let lacking = match prefetched {
            Prefetched::Complete(record) => {
                return Ok(RecordSource::Given {
                    record,
                    base: hook.fhir_server,
                });
            }
            Prefetched::Nothing if hook.fhir_server.is_none() => {
                return Ok(RecordSource::Configured);
            }
            Prefetched::Nothing => Vec::new(),
            Prefetched::Partial(lacking) => lacking,
        };
        let Some(server) = hook.fhir_server else {
            return Err(CdsError::DataUnavailable(format!(
                "the prefetch lacks {}, and no fhirServer was given to read it from",
                lacking.join(", ")
            ))
            .into());
        };
        let (timeout, retries, max_pages, page_size) = FHIR_SERVER;
        let authorization = match hook.access_token {
            Some(token) => Authorization::Bearer(SecretString::from(token)),
            None => Authorization::None,
        };
        let http = match &*CALLER_SERVERS {
            Ok(http) => http.clone(),
            Err(e) => return Err(PipelineError::Ehr(Box::new(EhrError::Client(e.clone())))),
        };
        let client = FhirClient::with_http(
            http,
            ClientSettings {
                base_url: server.clone(),
                timeout,
                retries,
                backoff: Duration::from_millis(200),
                max_pages,
                page_size,
            },
            authorization,
        );
        match self.pull_audited(&client, &hook.patient).await {
            Ok(record) => Ok(RecordSource::Given {
                record: Box::new(record),
                base: Some(server),
            }),
            Err(e) => Err(CdsError::DataUnavailable(match &e {
                EhrError::Status { status: 404, .. } => {
                    format!("fhirServer has no patient {}", hook.patient)
                }
                EhrError::Status {
                    status: status @ (401 | 403),
                    ..
                } => format!("fhirServer refused the fhirAuthorization token (HTTP {status})"),
                _ => format!("fhirServer could not be read: {e}"),
            })
            .into()),
        }
    }

    /// For each input the record did not fill that a test gives: the input and the test the
    /// training cohort measured.
    pub fn orders_for_missing(&self, content: &AssessmentContent) -> Vec<(String, TestToOrder)> {
        let Some(spec) = spec_of(self) else {
            return Vec::new();
        };
        unfilled_columns(content)
            .into_iter()
            .filter_map(|column| {
                let test = spec.orderable_tests(&column).into_iter().next()?;
                Some((
                    column,
                    TestToOrder {
                        code: test.code,
                        display: test.display,
                    },
                ))
            })
            .collect()
    }

    /// Each order (a draft ServiceRequest) that fills inputs the record lacks: the order in
    /// words, and the inputs (`imaging` for an imaging order when the model takes imaging and
    /// had none).
    pub fn order_gains(
        &self,
        content: &AssessmentContent,
        orders: &[Value],
    ) -> Vec<(String, Vec<String>)> {
        let Some(spec) = spec_of(self) else {
            return Vec::new();
        };
        let lacking = unfilled_columns(content);
        let imaging_missing =
            spec.imaging.is_some() && content.missing.iter().any(|(m, _)| m == "imaging");
        let mut gains = Vec::new();
        for order in orders {
            let mut inputs: Vec<String> = Vec::new();
            for code in codes_of(&order["code"]) {
                for input in spec.inputs_filled_by(&code) {
                    if lacking.contains(&input) && !inputs.contains(&input) {
                        inputs.push(input);
                    }
                }
            }
            let imaging_order = order["category"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| codes_of(c).iter().any(|code| code == IMAGING_CATEGORY));
            if imaging_missing && imaging_order {
                inputs.push("imaging".into());
            }
            if inputs.is_empty() {
                continue;
            }
            let name = order["code"]["text"]
                .as_str()
                .or_else(|| {
                    order
                        .pointer("/code/coding/0/display")
                        .and_then(Value::as_str)
                })
                .or_else(|| order.pointer("/code/coding/0/code").and_then(Value::as_str))
                .unwrap_or("This order");
            gains.push((name.chars().take(60).collect(), inputs));
        }
        gains
    }

    /// Records a card shown (again: nothing new).
    pub async fn record_card(&self, card: &ShownCard) -> Result<(), PipelineError> {
        Ok(self.store.record_card(card).await?)
    }

    /// Files each feedback on a card `service` showed, all or none; returns the patients it
    /// was about. A feedback already filed (the same card, outcome and moment) is not filed
    /// again.
    pub async fn file_card_feedback(
        &self,
        service: &str,
        feedback: &[CardFeedback],
    ) -> Result<Vec<String>, PipelineError> {
        let mut shown = Vec::with_capacity(feedback.len());
        for (index, f) in feedback.iter().enumerate() {
            let card =
                self.store
                    .shown_card(&f.card)
                    .await?
                    .ok_or_else(|| CdsError::UnknownCard {
                        index,
                        card: f.card.clone(),
                    })?;
            if card.service != service {
                return Err(CdsError::OtherService {
                    index,
                    card: f.card.clone(),
                    shown_by: card.service,
                }
                .into());
            }
            shown.push(card);
        }
        let mut patients: Vec<String> = Vec::new();
        let mut tx = self.store.begin().await?;
        let mut filed = 0usize;
        let mut outcomes = Vec::new();
        for (f, card) in feedback.iter().zip(&shown) {
            let id = feedback_id(f);
            if !patients.contains(&card.patient) {
                patients.push(card.patient.clone());
            }
            if tx
                .current_version(ResourceType::Basic, &id)
                .await?
                .is_some()
            {
                continue;
            }
            let resource = feedback_resource(
                id.as_ref(),
                &CardShown {
                    service: &card.service,
                    patient: &card.patient,
                    report: &card.report,
                    model: &card.model,
                    user: card.user.as_deref(),
                },
                f,
            );
            let serde_json::Value::Object(map) = resource else {
                continue;
            };
            tx.write(ResourceType::Basic, &id, map, None).await?;
            filed += 1;
            outcomes.push(f.outcome.clone());
        }
        tx.commit().await?;
        for decision in outcomes {
            crate::metrics::METRICS
                .card_feedback
                .get_or_create(&crate::metrics::DecisionLabels { decision })
                .inc();
        }
        tracing::info!(
            service,
            feedback = feedback.len(),
            filed,
            "CDS card feedback filed"
        );
        Ok(patients)
    }
}

/// SNOMED CT 363679005 |Imaging|, the ServiceRequest category of imaging orders.
const IMAGING_CATEGORY: &str = "363679005";

/// The columns of the inputs the record did not fill.
fn unfilled_columns(content: &AssessmentContent) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for u in &content.unfilled {
        let column = u.feature.split('=').next().unwrap_or(&u.feature).to_owned();
        if !columns.contains(&column) {
            columns.push(column);
        }
    }
    columns
}

/// The id of a feedback's resource: a digest of its card, outcome and moment.
fn feedback_id(f: &CardFeedback) -> ResourceId {
    digest_id("cds-feedback", &[&f.card, &f.outcome, &f.at])
        .unwrap_or_else(|_| ResourceId::generate())
}
