-- The CDS Hooks cards the service has shown: a card's uuid is derived from the service, the
-- assessment and the user, so that opening the same chart again shows the same card and adds
-- no row. Feedback names a card by its uuid only; this is how it finds the patient, the
-- assessment (the DiagnosticReport) and the model the card showed, and the user it was shown
-- to. Ids only: no clinical content.
CREATE TABLE cds_cards (
    uuid        TEXT    NOT NULL PRIMARY KEY,
    service     TEXT    NOT NULL,
    patient     TEXT    NOT NULL,
    report      TEXT    NOT NULL,
    model       TEXT    NOT NULL,
    user_ref    TEXT,
    client      TEXT,
    issued_ms   INTEGER    NOT NULL
);
