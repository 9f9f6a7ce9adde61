-- What each model version was given for each assessment (the DiagnosticReport's id), as
-- compact JSON: each numeric input as recorded, each categorical input's level, the inputs
-- missing, the whitened principal-component scores of each embedding, the imaging
-- acquisition, and the model's log hazard ratio. The active model's row is written in the
-- assessment's transaction, a shadow's beside its answer. For governance (drift) only.
CREATE TABLE model_inputs (
    report      TEXT    NOT NULL,
    model       TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    created_ms  BIGINT    NOT NULL,
    content     TEXT    NOT NULL,
    PRIMARY KEY (report, model, version)
);
CREATE INDEX model_inputs_by_time ON model_inputs (created_ms);
