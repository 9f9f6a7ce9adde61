//! HL7 v2 over HTTP (`POST /hl7/v2`): one message per request, answered with its ACK as the
//! MLLP listener would, for interface engines that post rather than hold MLLP connections.

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse, post};

use super::{ApiError, ApiState, read_body};

/// The media type of HL7 v2 in its pipe-and-hat encoding (ER7).
pub const HL7_V2_MEDIA_TYPE: &str = "x-application/hl7-v2+er7";

/// The media types a message may be posted as. Not `text/plain`: a web page can post that
/// from any browser without asking (no CORS preflight), and an ADT renames a patient.
const ACCEPTED_MEDIA_TYPES: [&str; 3] = [
    HL7_V2_MEDIA_TYPE,
    "application/hl7-v2",
    "application/hl7-v2+er7",
];

fn check_media_type(req: &HttpRequest) -> Result<(), ApiError> {
    let media = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if ACCEPTED_MEDIA_TYPES.contains(&media.as_str()) {
        Ok(())
    } else {
        Err(ApiError::new(
            crate::error::ErrorKind::UnsupportedMediaType,
            format!(
                "HL7 v2 messages are posted as {}",
                ACCEPTED_MEDIA_TYPES.join(", ")
            ),
        ))
    }
}

/// Take one HL7 v2 message (ORU^R01, ORM^O01, OMI^O23, ADT^A01/A04/A08). It is stored before
/// the answer is sent. The answer is its ACK: MSA-1 AA when stored, AE or AR with an ERR
/// segment naming the segment and field at fault otherwise. HTTP status 200 whenever an ACK is
/// returned, whatever its code (read MSA-1); 204 when MSH-15/16 ask for no acknowledgement.
#[utoipa::path(
    tag = "HL7 v2",
    request_body(content = String, content_type = "x-application/hl7-v2+er7", description = "One HL7 v2 message; segments separated by CR, LF or CRLF"),
    responses(
        (status = 200, description = "The message's ACK (MSA-1: AA, AE or AR)", body = String, content_type = "x-application/hl7-v2+er7"),
        (status = 204, description = "Taken; MSH-15/16 asked for no acknowledgement"),
        (status = 413, description = "Body over the configured limit (hl7.max_message_bytes)", body = Object, content_type = "application/fhir+json"),
        (status = 415, description = "Not an HL7 v2 media type (x-application/hl7-v2+er7, application/hl7-v2, application/hl7-v2+er7)", body = Object, content_type = "application/fhir+json"),
    )
)]
#[post("/v2")]
pub async fn receive_message(
    req: HttpRequest,
    state: Data<ApiState>,
    payload: Payload,
) -> Result<HttpResponse, ApiError> {
    check_media_type(&req)?;
    let body = read_body(&req, payload, state.hl7_max_message_bytes).await?;
    let answer = state.pipeline.receive_hl7(&body).await;
    Ok(match answer.ack {
        Some(ack) => HttpResponse::Ok()
            .content_type(HL7_V2_MEDIA_TYPE)
            .insert_header(("X-HL7-Acknowledgment-Code", answer.code.as_str()))
            .body(ack),
        None => HttpResponse::NoContent().finish(),
    })
}
