-- What each shadow model said of the inputs of each assessment the active model answered
-- (the DiagnosticReport's id): its log hazard ratio and probabilities by horizon, or why it
-- could not answer. For governance only: never a FHIR resource, never shown in the chart.
CREATE TABLE shadow_predictions (
    report            TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    version           TEXT    NOT NULL,
    patient           TEXT    NOT NULL,
    created_ms        INTEGER    NOT NULL,
    log_hazard_ratio  REAL,
    horizons          TEXT,
    refused           TEXT,
    PRIMARY KEY (report, model, version)
);
CREATE INDEX shadow_predictions_by_model ON shadow_predictions (model, version, created_ms);
