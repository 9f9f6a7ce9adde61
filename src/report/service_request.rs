//! ServiceRequest from an ORM^O01 or OMI^O23 order: placer, filler and accession numbers as
//! identifiers, status from the order control and order status, priority, what is ordered,
//! when, by whom and why.

use serde_json::{Value, json};

use super::v2::{
    Element, IdentifierSystems, annotations, codeable_concept, concept, identifier,
    patient_reference,
};
use crate::domain::ResourceId;
use crate::hl7::order::{EntityId, OrderDraft};

const SNOMED: &str = "http://snomed.info/sct";

/// The identifiers an order's ServiceRequest carries, the first being the one that finds it
/// again (placer order number, else filler): placer (`PLAC`), filler (`FILL`), accession
/// (`ACSN`).
pub fn order_identifiers(order: &OrderDraft, systems: IdentifierSystems<'_>) -> Vec<Value> {
    [
        (&order.placer, "PLAC"),
        (&order.filler, "FILL"),
        (&order.accession, "ACSN"),
    ]
    .into_iter()
    .filter_map(|(number, type_code)| {
        number
            .as_ref()
            .map(|n| identifier(&n.value, &n.authority, type_code, systems))
    })
    .collect()
}

/// (system, value) by which an order number was filed as a ServiceRequest identifier.
pub fn order_identifier_key(
    number: &EntityId,
    systems: IdentifierSystems<'_>,
) -> (Option<String>, String) {
    (systems.system(&number.authority), number.value.clone())
}

/// The request status an order control (ORC-1, table 0119) and order status (ORC-5, table
/// 0038) give; the order status wins when it is sent.
pub fn request_status(order: &OrderDraft) -> &'static str {
    match order.status.as_str() {
        "CM" => return "completed",
        "CA" | "DC" => return "revoked",
        "HD" => return "on-hold",
        "IP" | "SC" | "A" => return "active",
        _ => {}
    }
    match order.control.as_str() {
        "CA" | "OC" | "CR" | "DC" | "OD" | "DR" => "revoked",
        "HD" | "OH" | "HR" => "on-hold",
        _ => "active",
    }
}

/// A ServiceRequest (intent `order`) as R4 JSON, without an id.
pub fn service_request_from_hl7(
    order: &OrderDraft,
    subject: &ResourceId,
    systems: IdentifierSystems<'_>,
) -> Value {
    let laboratory = matches!(
        order.section.as_str(),
        "LAB" | "CH" | "HM" | "MB" | "SP" | "BLB" | "CP" | "IMM" | "SR" | "TX" | "VR" | "PAT"
    );
    let category = if order.imaging {
        Some(json!([concept(SNOMED, "363679005", "Imaging")]))
    } else if laboratory {
        Some(json!([concept(
            SNOMED,
            "108252007",
            "Laboratory procedure"
        )]))
    } else {
        None
    };
    let priority = match order.priority.as_str() {
        "S" => "stat",
        "A" => "asap",
        "R" => "routine",
        "P" | "C" | "T" => "urgent",
        _ => "",
    };
    let requester = order.orderer.as_ref().map(|o| {
        Element::new()
            .set("display", o.display())
            .some(
                "identifier",
                (!o.id.is_empty()).then(|| json!({ "value": o.id })),
            )
            .build()
    });
    let notes = annotations(
        order
            .notes
            .iter()
            .chain(std::iter::once(&order.clinical_info).filter(|c| !c.is_empty())),
    );
    Element::resource("ServiceRequest")
        .list("identifier", order_identifiers(order, systems))
        .set("status", request_status(order))
        .set("intent", "order")
        .some("category", category)
        .text("priority", priority)
        .some("code", order.code.as_ref().map(codeable_concept))
        .set("subject", patient_reference(subject))
        // Times as converted from HL7, at the precision sent.
        .text("occurrenceDateTime", &order.requested_time)
        .text("authoredOn", &order.authored)
        .some("requester", requester)
        .list(
            "reasonCode",
            order.reasons.iter().map(codeable_concept).collect(),
        )
        .list("note", notes)
        .build()
}
