//! Filing what an HL7 message says as FHIR resources, in the transaction that records the
//! message: its Patient found by identifier (or made from PID; ADT messages update it), then an
//! Observation per ORU^R01 OBX (based on the ServiceRequest of its order, when that order was
//! filed) or a ServiceRequest per ORM/OMI order, each updating the one already filed under the
//! same identifier (a corrected result, a changed or cancelled order).

use serde_json::Value;

use super::lookup::{find_for_patient, find_patient, object};
use super::resources::update_in;
use super::{Pipeline, PipelineError};
use crate::domain::{ResourceId, ResourceType};
use crate::fhir::validate_resource;
use crate::hl7::ack::Header;
use crate::hl7::content::MessageContent;
use crate::hl7::order::EntityId;
use crate::hl7::patient::PatientDraft;
use crate::report::{self, IdentifierSystems, ResultContext};
use crate::store::{Hl7Receipt, NewHl7Message, StoreTransaction};

impl Pipeline {
    /// Records the message and files its content, all or nothing. A message already recorded
    /// is not filed again.
    pub(super) async fn file_hl7(
        &self,
        record: &NewHl7Message<'_>,
        header: &Header,
        content: &MessageContent,
    ) -> Result<Hl7Receipt, PipelineError> {
        // Two messages about a new patient make one Patient: the transaction's Patient lookup
        // holds the find-or-create lock (see `lookup::find_patient`) until it commits.
        let mut tx = self.store.begin().await?;
        let receipt = tx.record_hl7_message(record, Ok(())).await?;
        if !receipt.new {
            return Ok(receipt);
        }
        let systems = IdentifierSystems {
            by_namespace: &self.hl7.identifier_systems,
        };
        let updates_patient = record.message_type.starts_with("ADT");
        let patient = patient_for(&mut tx, &content.patient, updates_patient, systems).await?;
        let context = ResultContext {
            subject: &patient,
            control_id: &header.control_id,
            systems,
        };
        // The ServiceRequest each OBR answers, looked up once per OBR, not once per OBX.
        let mut requests: Vec<(&[EntityId], Option<ResourceId>)> = Vec::new();
        for draft in &content.observations {
            let mut resource = report::observation_from_hl7(draft, &context);
            let numbers = draft.order_numbers.as_slice();
            let request = match requests.iter().find(|(n, _)| *n == numbers) {
                Some((_, request)) => request.clone(),
                None => {
                    let request = filed_order(&mut tx, &patient, numbers, systems).await?;
                    requests.push((numbers, request.clone()));
                    request
                }
            };
            if let Some(request) = request {
                resource["basedOn"] =
                    serde_json::json!([{ "reference": format!("ServiceRequest/{request}") }]);
            }
            file_by_identifier(&mut tx, ResourceType::Observation, &patient, resource).await?;
        }
        for order in &content.orders {
            let resource = report::service_request_from_hl7(order, &patient, systems);
            file_by_identifier(&mut tx, ResourceType::ServiceRequest, &patient, resource).await?;
        }
        tx.commit().await?;
        Ok(receipt)
    }

    /// Records a message answered with an error, with the reason.
    pub(super) async fn record_failed_hl7(
        &self,
        record: &NewHl7Message<'_>,
        reason: &str,
    ) -> Result<Hl7Receipt, PipelineError> {
        let mut tx = self.store.begin().await?;
        let receipt = tx.record_hl7_message(record, Err(reason)).await?;
        tx.commit().await?;
        Ok(receipt)
    }
}

/// The patient's ServiceRequest filed under one of an OBR's order numbers, if any.
async fn filed_order(
    tx: &mut StoreTransaction,
    patient: &ResourceId,
    numbers: &[EntityId],
    systems: IdentifierSystems<'_>,
) -> Result<Option<ResourceId>, PipelineError> {
    for number in numbers {
        let (system, value) = report::order_identifier_key(number, systems);
        let t = ResourceType::ServiceRequest;
        if let Some(order) = find_for_patient(tx, t, patient, system.as_deref(), &value).await? {
            return Ok(Some(order.id));
        }
    }
    Ok(None)
}

/// The Patient a message is about, by its primary identifier (see [`find_patient`]); made
/// from PID when there is none. With `update` (ADT), the message's demographics replace the
/// stored ones.
async fn patient_for(
    tx: &mut StoreTransaction,
    draft: &PatientDraft,
    update: bool,
    systems: IdentifierSystems<'_>,
) -> Result<ResourceId, PipelineError> {
    let Some(primary) = draft.primary_identifier() else {
        // read_patient refuses a PID without identifiers, so this is not reached.
        return Err(PipelineError::NoPatientIdentifier);
    };
    let system = systems.system(&primary.authority);
    let found = find_patient(tx, system.as_deref(), &primary.value).await?;
    match found {
        Some(stored) if !update => Ok(stored.id),
        Some(stored) => {
            let id = stored.id.clone();
            let existing = stored
                .content
                .as_deref()
                .and_then(|c| serde_json::from_str::<Value>(c).ok())
                .map(object)
                .unwrap_or_default();
            let update = report::patient_from_hl7(&id, draft, systems);
            let merged = report::merge_patient(&existing, &update);
            validate_resource(&merged, Some(ResourceType::Patient))?;
            update_in(tx, ResourceType::Patient, &id, merged, None).await?;
            tracing::info!(patient = %id, "Patient updated from HL7");
            Ok(id)
        }
        None => {
            let id = ResourceId::generate();
            let resource = object(report::patient_from_hl7(&id, draft, systems));
            validate_resource(&resource, Some(ResourceType::Patient))?;
            update_in(tx, ResourceType::Patient, &id, resource, None).await?;
            tracing::info!(patient = %id, "Patient created from HL7");
            Ok(id)
        }
    }
}

/// Writes `resource` as a new version of the patient's resource that carries one of its
/// identifiers (tried in order: for an order, the placer number, then the filler number, then
/// the accession number, so that a cancel naming only the filler still finds its order), or
/// as a new resource.
async fn file_by_identifier(
    tx: &mut StoreTransaction,
    t: ResourceType,
    patient: &ResourceId,
    resource: Value,
) -> Result<(), PipelineError> {
    let mut resource = object(resource);
    let keys: Vec<(Option<String>, String)> = resource
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| {
            let value = i.get("value").and_then(Value::as_str)?;
            let system = i.get("system").and_then(Value::as_str).map(str::to_owned);
            Some((system, value.to_owned()))
        })
        .collect();
    let mut existing = None;
    for (system, value) in &keys {
        existing = find_for_patient(tx, t, patient, system.as_deref(), value).await?;
        if existing.is_some() {
            break;
        }
    }
    let id = existing.map(|e| e.id).unwrap_or_else(ResourceId::generate);
    resource.insert("id".into(), Value::String(id.to_string()));
    validate_resource(&resource, Some(t))?;
    update_in(tx, t, &id, resource, None).await?;
    Ok(())
}
