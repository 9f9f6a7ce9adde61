-- Asynchronous $risk-assessment requests (Prefer: respond-async), recorded before the 202 so
-- that an accepted request is not lost: one left running when the service stopped is run again
-- at the next start. request is the request as JSON (patient, model, study, horizons; no
-- patient data beyond the id); base is the FHIR base its Bundle's URLs use. status: running,
-- done (result: the Bundle) or failed (error_status and error: the OperationOutcome's).
CREATE TABLE risk_jobs (
    id            TEXT    NOT NULL PRIMARY KEY,
    request       TEXT    NOT NULL,
    base          TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    result        TEXT,
    error_status  INTEGER,
    error         TEXT,
    created_ms    INTEGER    NOT NULL,
    finished_ms   INTEGER
);
CREATE INDEX risk_jobs_by_status ON risk_jobs (status, created_ms);
