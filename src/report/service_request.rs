//! ServiceRequest from an ORM^O01 or OMI^O23 order: placer, filler and accession numbers as
//! identifiers, status from the order control and order status, priority, what is ordered,
//! when, by whom and why.

use fhir_sdk::r4b::codes::{RequestIntent, RequestPriority, RequestStatus};
use fhir_sdk::r4b::resources::ServiceRequest;
use fhir_sdk::r4b::types::{Identifier, Reference};
use serde_json::Value;

use super::v2::{
    IdentifierSystems, annotations, codeable_concept, concept, identifier, patient_reference,
};
use super::{ReportError, build_err, to_value};
use crate::domain::ResourceId;
use crate::hl7::order::OrderDraft;

const SNOMED: &str = "http://snomed.info/sct";

/// The identifiers an order's ServiceRequest carries, the first being the one that finds it
/// again (placer order number, else filler): placer (`PLAC`), filler (`FILL`), accession
/// (`ACSN`).
pub fn order_identifiers(
    order: &OrderDraft,
    systems: IdentifierSystems<'_>,
) -> Result<Vec<Identifier>, ReportError> {
    let mut identifiers = Vec::new();
    for (number, type_code) in [
        (&order.placer, "PLAC"),
        (&order.filler, "FILL"),
        (&order.accession, "ACSN"),
    ] {
        if let Some(number) = number {
            identifiers.push(identifier(
                &number.value,
                &number.authority,
                type_code,
                systems,
            )?);
        }
    }
    Ok(identifiers)
}

/// The request status an order control (ORC-1, table 0119) and order status (ORC-5, table
/// 0038) give; the order status wins when it is sent.
pub fn request_status(order: &OrderDraft) -> RequestStatus {
    match order.status.as_str() {
        "CM" => return RequestStatus::Completed,
        "CA" | "DC" => return RequestStatus::Revoked,
        "HD" => return RequestStatus::OnHold,
        "IP" | "SC" | "A" => return RequestStatus::Active,
        _ => {}
    }
    match order.control.as_str() {
        "CA" | "OC" | "CR" | "DC" | "OD" | "DR" => RequestStatus::Revoked,
        "HD" | "OH" | "HR" => RequestStatus::OnHold,
        _ => RequestStatus::Active,
    }
}

/// A ServiceRequest (intent `order`) as R4 JSON, without an id.
pub fn service_request_from_hl7(
    order: &OrderDraft,
    subject: &ResourceId,
    systems: IdentifierSystems<'_>,
) -> Result<Value, ReportError> {
    let mut b = ServiceRequest::builder()
        .identifier(
            order_identifiers(order, systems)?
                .into_iter()
                .map(Some)
                .collect(),
        )
        .status(request_status(order))
        .intent(RequestIntent::Order)
        .subject(patient_reference(subject)?);
    let laboratory = matches!(
        order.section.as_str(),
        "LAB" | "CH" | "HM" | "MB" | "SP" | "BLB" | "CP" | "IMM" | "SR" | "TX" | "VR" | "PAT"
    );
    if order.imaging {
        b = b.category(vec![Some(concept(SNOMED, "363679005", "Imaging")?)]);
    } else if laboratory {
        b = b.category(vec![Some(concept(
            SNOMED,
            "108252007",
            "Laboratory procedure",
        )?)]);
    }
    if let Some(priority) = match order.priority.as_str() {
        "S" => Some(RequestPriority::Stat),
        "A" => Some(RequestPriority::Asap),
        "R" => Some(RequestPriority::Routine),
        "P" | "C" | "T" => Some(RequestPriority::Urgent),
        _ => None,
    } {
        b = b.priority(priority);
    }
    if let Some(code) = &order.code {
        b = b.code(codeable_concept(code)?);
    }
    if let Some(orderer) = &order.orderer {
        let mut r = Reference::builder().display(orderer.display());
        if !orderer.id.is_empty() {
            r = r.identifier(
                Identifier::builder()
                    .value(orderer.id.clone())
                    .build()
                    .map_err(build_err("ServiceRequest.requester.identifier"))?,
            );
        }
        b = b.requester(r.build().map_err(build_err("ServiceRequest.requester"))?);
    }
    let reasons = order
        .reasons
        .iter()
        .map(|r| codeable_concept(r).map(Some))
        .collect::<Result<Vec<_>, _>>()?;
    if !reasons.is_empty() {
        b = b.reason_code(reasons);
    }
    let notes = annotations(
        order
            .notes
            .iter()
            .chain(std::iter::once(&order.clinical_info).filter(|c| !c.is_empty())),
    )?;
    if !notes.is_empty() {
        b = b.note(notes);
    }
    let request = b.build().map_err(build_err("ServiceRequest"))?;
    let mut value = to_value("ServiceRequest", &request)?;
    if let Some(object) = value.as_object_mut() {
        if !order.requested_time.is_empty() {
            object.insert(
                "occurrenceDateTime".into(),
                Value::String(order.requested_time.clone()),
            );
        }
        if !order.authored.is_empty() {
            object.insert("authoredOn".into(), Value::String(order.authored.clone()));
        }
    }
    Ok(value)
}
