//! A clinician's sign-off on a risk report (`report::sign_off` shapes the resources): checked
//! and written in one transaction, so that two clinicians signing at once cannot both succeed
//! and nothing is half-filed. The report must still be the version the caller read (whose
//! patient the edge has checked against the caller's grant).

use serde_json::{Map, Value};

use super::{Pipeline, PipelineError, digest_id};
use crate::domain::{ResourceId, ResourceType, VersionId};
use crate::error::ErrorKind;
use crate::report::risk::CODE_SYSTEM;
use crate::report::sign_off::{Decision, Review, attestation, review_record, signed_report};

/// What the clinician decided, on which report, as whom.
#[derive(Debug, Clone)]
pub struct SignOffRequest {
    pub report: ResourceId,
    pub decision: Decision,
    /// A Practitioner or PractitionerRole reference.
    pub clinician: String,
    /// The report's version the caller read.
    pub seen_version: VersionId,
}

/// What the sign-off filed: the report as it now stands, the attestation (when signed) and the
/// review record, as (type, id, JSON).
#[derive(Debug, Clone)]
pub struct SignedOff {
    pub resources: Vec<(ResourceType, ResourceId, String)>,
    pub patient: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SignOffError {
    #[error(
        "DiagnosticReport/{0} is not a risk report of this service, so there is nothing to sign off"
    )]
    NotARiskReport(String),
    #[error(
        "the report was signed by {by} at {at}; a signed report is final and is not signed or \
         disputed again (a newer assessment is filed beside it)"
    )]
    AlreadySigned { by: String, at: String },
    #[error("the report's status is `{0}`; only a preliminary report can be signed or disputed")]
    NotPreliminary(String),
    #[error("{clinician} has already recorded this decision on this report")]
    AlreadyDecided { clinician: String },
    #[error(
        "DiagnosticReport/{0} is a signed risk report: final, attested by its Provenance, and \
         neither changed nor deleted; a newer assessment is filed beside it"
    )]
    SignedIsFinal(String),
    #[error("a review id could not be made: {0}")]
    Id(crate::domain::IdError),
    #[error("the report changed after it was read (now version {0}); read it again and review it")]
    Changed(VersionId),
}

impl SignOffError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SignOffError::NotARiskReport(_) => ErrorKind::Unprocessable,
            SignOffError::AlreadySigned { .. }
            | SignOffError::NotPreliminary(_)
            | SignOffError::AlreadyDecided { .. }
            | SignOffError::SignedIsFinal(_) => ErrorKind::Conflict,
            SignOffError::Changed(_) => ErrorKind::PreconditionFailed,
            SignOffError::Id(_) => ErrorKind::Internal,
        }
    }
}

fn parsed(content: Option<&str>) -> Map<String, Value> {
    content
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default()
}

/// The review record's id: one per report, clinician and decision, so that a decision sent
/// twice is recorded once.
fn review_id(
    report: &ResourceId,
    clinician: &str,
    decision: &Decision,
) -> Result<ResourceId, SignOffError> {
    digest_id("review", &[report.as_ref(), clinician, decision.code()]).map_err(SignOffError::Id)
}

/// Whether a stored DiagnosticReport is a risk report of this service.
fn is_risk_report(report: &Map<String, Value>) -> bool {
    report
        .get("code")
        .and_then(|c| c.get("coding"))
        .and_then(Value::as_array)
        .is_some_and(|codings| {
            codings
                .iter()
                .any(|c| c["system"] == CODE_SYSTEM && c["code"] == "prognostic-risk-report")
        })
}

/// A signed risk report is final: the REST API neither changes nor deletes it (its
/// attestation names that version). Anything else passes.
pub(super) async fn refuse_changing_signed(
    tx: &mut crate::store::StoreTransaction,
    t: ResourceType,
    id: &ResourceId,
) -> Result<(), PipelineError> {
    if t != ResourceType::DiagnosticReport {
        return Ok(());
    }
    let stored = match tx.read(t, id).await {
        Ok(stored) => stored,
        Err(crate::store::StoreError::NotFound { .. } | crate::store::StoreError::Gone { .. }) => {
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let report = parsed(stored.content.as_deref());
    if is_risk_report(&report) && report.get("status").and_then(Value::as_str) == Some("final") {
        return Err(SignOffError::SignedIsFinal(id.to_string()).into());
    }
    Ok(())
}

impl Pipeline {
    /// Records a clinician's decision on a preliminary risk report.
    pub async fn sign_off(&self, request: &SignOffRequest) -> Result<SignedOff, PipelineError> {
        let mut tx = self.store.begin().await?;
        let stored = tx
            .read(ResourceType::DiagnosticReport, &request.report)
            .await?;
        if stored.version != request.seen_version {
            return Err(SignOffError::Changed(stored.version).into());
        }
        let report = parsed(stored.content.as_deref());
        if !is_risk_report(&report) {
            return Err(SignOffError::NotARiskReport(request.report.to_string()).into());
        }
        match report.get("status").and_then(Value::as_str) {
            Some("preliminary") => {}
            Some("final") => {
                let by = report
                    .get("resultsInterpreter")
                    .and_then(|r| r.pointer("/0/reference"))
                    .and_then(Value::as_str)
                    .unwrap_or("a clinician")
                    .to_owned();
                return Err(SignOffError::AlreadySigned {
                    by,
                    at: stored.last_updated.to_rfc3339(),
                }
                .into());
            }
            other => {
                return Err(SignOffError::NotPreliminary(other.unwrap_or("").to_owned()).into());
            }
        }
        let patient = report
            .get("subject")
            .and_then(|s| s.get("reference"))
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("Patient/"))
            .unwrap_or_default()
            .to_owned();
        let review_id = review_id(&request.report, &request.clinician, &request.decision)?;
        if tx
            .current_version(ResourceType::Basic, &review_id)
            .await?
            .is_some()
        {
            return Err(SignOffError::AlreadyDecided {
                clinician: request.clinician.clone(),
            }
            .into());
        }
        // The RiskAssessment filed with the report has the report's id.
        let risk = match tx.read(ResourceType::RiskAssessment, &request.report).await {
            Ok(stored) => Some(parsed(stored.content.as_deref())),
            Err(
                crate::store::StoreError::NotFound { .. } | crate::store::StoreError::Gone { .. },
            ) => None,
            Err(e) => return Err(e.into()),
        };
        let model = risk
            .as_ref()
            .and_then(|r| r.get("method"))
            .and_then(|m| m.get("text"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let review = Review {
            report: request.report.as_ref(),
            risk_assessment: risk.as_ref().map(|_| request.report.as_ref()),
            patient: &patient,
            clinician: &request.clinician,
            model: model.as_deref(),
            at: &at,
        };

        let mut filed = Vec::new();
        if request.decision == Decision::Sign {
            let signed = tx
                .write(
                    ResourceType::DiagnosticReport,
                    &request.report,
                    signed_report(report, &request.clinician),
                    Some(stored.version),
                )
                .await?;
            // A report is signed once, so its attestation's id is the report's.
            let provenance_id =
                digest_id("sign", &[request.report.as_ref()]).map_err(SignOffError::Id)?;
            let provenance = attestation(
                provenance_id.as_ref(),
                &review,
                &signed.version.to_string(),
                &stored.version.to_string(),
            );
            let Value::Object(provenance) = provenance else {
                unreachable!("attestation is an object")
            };
            let provenance = tx
                .write(ResourceType::Provenance, &provenance_id, provenance, None)
                .await?;
            filed.push(signed);
            filed.push(provenance);
        } else {
            filed.push(stored);
        }
        let Value::Object(record) = review_record(review_id.as_ref(), &review, &request.decision)
        else {
            unreachable!("a review record is an object")
        };
        filed.push(
            tx.write(ResourceType::Basic, &review_id, record, None)
                .await?,
        );
        tx.commit().await?;
        crate::metrics::METRICS
            .reviews
            .get_or_create(&crate::metrics::DecisionLabels {
                decision: request.decision.word().to_owned(),
            })
            .inc();
        tracing::info!(
            report = %request.report,
            decision = request.decision.word(),
            "risk report reviewed"
        );
        Ok(SignedOff {
            resources: filed
                .into_iter()
                .filter_map(|s| Some((s.resource_type, s.id, s.content?)))
                .collect(),
            patient,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_review_id_per_report_clinician_and_decision() {
        let report = ResourceId::parse("risk-abc").unwrap();
        let id =
            |clinician: &str, decision: &Decision| review_id(&report, clinician, decision).unwrap();
        let sign = id("Practitioner/a", &Decision::Sign);
        assert_eq!(sign, id("Practitioner/a", &Decision::Sign));
        assert_ne!(sign, id("Practitioner/b", &Decision::Sign));
        let disagree = Decision::Disagree {
            reason: "override-inputs-wrong".into(),
            comment: None,
        };
        assert_ne!(sign, id("Practitioner/a", &disagree));
        assert!(sign.as_ref().len() <= 64);
    }
}
