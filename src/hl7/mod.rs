//! HL7 v2: MLLP framing (`mllp`), reading and checking a message (`message`), the
//! acknowledgements that answer it (`ack`) and ORU^R01 results read into observations (`oru`).
//! `hl7-parser` parses the structure; framing, validation and acknowledgement are the service's.

pub mod ack;
pub mod datetime;
pub mod message;
pub mod mllp;
pub mod oru;
