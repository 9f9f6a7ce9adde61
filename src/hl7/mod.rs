//! HL7 v2: MLLP framing (`mllp_framing`), reading and checking a message (`message`), the
//! acknowledgements that answer it (`ack`), and the clinical content read out of it
//! (`content`: the patient from PID, results from ORU^R01 in `oru`, orders from ORM^O01 and
//! OMI^O23 in `order`). `hl7-parser` parses the structure; framing, validation, reading and
//! acknowledgement are the service's. Turning the content into FHIR resources is `report`'s.

pub mod ack;
pub mod codes;
pub mod content;
pub mod datetime;
mod fields;
pub mod message;
pub mod mllp_framing;
pub mod order;
pub mod oru;
pub mod patient;

/// A code with its coding system as HL7 names it (`LN` for LOINC, `SCT` for SNOMED CT …).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hl7Code {
    pub code: String,
    pub display: String,
    pub system: String,
}
