"""Schemathesis hooks for the media types it cannot generate by itself: DICOM files, STOW-RS
multipart bodies and HL7 v2 messages get raw bytes and text (whatever arrives, the service
must answer in its own form, never with a server error)."""

from hypothesis import strategies as st
import schemathesis

MSH = b"MSH|^~\\&|LAB|HOSP|PROGNOSTICS|ONC|20240105083000||ORU^R01^ORU_R01|MSG1|P|2.5.1\r"

schemathesis.openapi.media_type("application/dicom", st.binary(max_size=4096))
schemathesis.openapi.media_type(
    'multipart/related; type="application/dicom"', st.binary(max_size=4096)
)
schemathesis.openapi.media_type(
    "x-application/hl7-v2+er7",
    st.one_of(st.binary(max_size=2048), st.binary(max_size=1024).map(lambda b: MSH + b)),
)
