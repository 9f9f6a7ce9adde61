-- How each model bundle is deployed: active (answers $risk-assessment and the cards), shadow
-- (scores every assessment's inputs where only governance sees it) or retired. At most one is
-- active, which the partial unique index holds even against two changes at once. Changes are
-- also recorded as Provenance of the model's Device and in the audit trail; this table is the
-- state the service switches on.
CREATE TABLE model_deployments (
    name        TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    changed_ms  INTEGER    NOT NULL,
    changed_by  TEXT,
    PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX model_deployments_one_active ON model_deployments (status)
    WHERE status = 'active';
