//! Entry points for fuzzing: one function per parser that takes outside bytes, each feeding
//! `data` through what the service does with such bytes and ignoring the verdict (an error is
//! a fine answer; a panic, a hang or unbounded memory is not). `fuzz/` (cargo-fuzz) calls them
//! under libFuzzer; the test suite replays the seeds and regressions through them.

use std::collections::BTreeMap;

use futures_util::FutureExt;

use crate::domain::{ResourceId, ResourceType};
use crate::hl7::ack::{AckCode, acknowledgement};
use crate::hl7::content::{DateContext, read_content};
use crate::hl7::datetime::SiteZone;
use crate::hl7::message::{read_message, split_batch};
use crate::hl7::mllp_framing::{Frame, read_frame};
use crate::report::{
    IdentifierSystems, ResultContext, observation_from_hl7, patient_from_hl7,
    service_request_from_hl7,
};

/// The boundary the STOW-RS target's bodies use.
pub const STOW_BOUNDARY: &str = "fuzzboundary";
/// The largest message the MLLP target's frames may hold.
const MLLP_MAX_MESSAGE: usize = 1024 * 1024;

/// An HL7 v2 message (or batch): read, checked, its content read and mapped to FHIR.
pub fn hl7_message(data: &[u8]) {
    let dates = DateContext {
        zone: SiteZone::System,
        now: chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(),
    };
    let messages = split_batch(data).unwrap_or_else(|| vec![data.to_vec()]);
    for bytes in messages {
        map_message(&bytes, &dates);
    }
}

fn map_message(bytes: &[u8], dates: &DateContext) {
    let message = match read_message(bytes) {
        Ok(message) => message,
        Err(refusal) => {
            let errors = [refusal.problem.clone()];
            let _ = acknowledgement(&refusal.header, AckCode::Reject, &errors, &[], "A1", "2026");
            return;
        }
    };
    let Ok(content) = read_content(&message, dates) else {
        return;
    };
    let namespaces = BTreeMap::new();
    let systems = IdentifierSystems {
        by_namespace: &namespaces,
    };
    let subject = ResourceId::generate();
    let _ = patient_from_hl7(&subject, &content.patient, systems);
    let context = ResultContext {
        subject: &subject,
        control_id: &message.header.control_id,
        systems,
    };
    for draft in &content.observations {
        let _ = observation_from_hl7(draft, &context);
    }
    for order in &content.orders {
        let _ = service_request_from_hl7(order, &subject, systems);
    }
}

/// MLLP framing: frames read one after another from a connection's bytes.
pub fn mllp_frames(data: &[u8]) {
    let mut reader = tokio::io::BufReader::new(data);
    // Reading from memory never waits: each read completes at once.
    for _ in 0..1024 {
        match read_frame(&mut reader, MLLP_MAX_MESSAGE).now_or_never() {
            Some(Ok(Frame::Message(message))) => hl7_message(&message),
            Some(Ok(Frame::Closed)) | Some(Err(_)) | None => return,
        }
    }
}

/// A DICOM file as STOW-RS, C-STORE and import receive it: read, its header and acquisition
/// kept, its pixels decoded.
pub fn dicom_file(data: &[u8]) {
    if crate::dicom::read_instance(data).is_ok() {
        let _ = crate::dicom::acquisition(data);
        let _ = crate::dicom::decode_image(data);
    }
}

/// A DIMSE command set as the storage SCP receives it.
pub fn dimse_command(data: &[u8]) {
    let _ = crate::dimse::read_command(data);
}

/// A STOW-RS body (boundary [`STOW_BOUNDARY`]): split into parts, each read as a DICOM file.
pub fn stow_multipart(data: &[u8]) {
    for part in crate::api::dicomweb::stow_parts(data, STOW_BOUNDARY)
        .iter()
        .take(16)
    {
        if crate::dicom::read_instance(part).is_ok() {
            let _ = crate::dicom::acquisition(part);
        }
    }
}

/// A FHIR resource body: parsed and validated as a create would.
pub fn fhir_resource(data: &[u8]) {
    if let Ok(object) = crate::fhir::parse_json_object(data) {
        let _ = crate::fhir::validate_resource(&object, None);
    }
}

/// A search's query string, on a few resource types.
pub fn search_query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect();
    for resource_type in [
        ResourceType::Patient,
        ResourceType::Observation,
        ResourceType::RiskAssessment,
    ] {
        let _ = crate::fhir::parse_search(resource_type, &pairs, false, 20, 500);
        let _ = crate::fhir::parse_search(resource_type, &pairs, true, 20, 500);
    }
}

/// The Parameters body of `$risk-assessment`.
pub fn risk_parameters(data: &[u8]) {
    let _ = crate::api::fhir::check_risk_parameters(data);
}
