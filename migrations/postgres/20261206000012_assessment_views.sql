-- The explanation of each assessment as the SMART app shows it (the model's survival curve for
-- the patient, the features that moved the risk with the resources they came from, what was
-- missing and the test that would fill it), kept when the assessment is filed: the model's
-- attributions cannot be read back from the FHIR resources. One row per DiagnosticReport, never
-- changed, read only with the report's own access rules.
CREATE TABLE assessment_views (
    report      TEXT    NOT NULL PRIMARY KEY,
    patient     TEXT    NOT NULL,
    content     TEXT    NOT NULL,
    created_ms  BIGINT    NOT NULL
);
