//! HL7 v2: MLLP framing (`mllp`), reading and checking a message (`message`) and the
//! acknowledgements that answer it (`ack`). `hl7-parser` parses the structure; framing,
//! validation and acknowledgement are the service's.

pub mod ack;
pub mod message;
pub mod mllp;
