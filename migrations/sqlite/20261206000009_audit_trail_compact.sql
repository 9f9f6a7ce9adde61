-- The audit trail's tables laid out for appending at the rate requests arrive: the sequence
-- number becomes the rowid (one B-tree instead of a table and an index), and the subjects
-- table is its own index (WITHOUT ROWID). Rows are copied as they are: their hashes still
-- chain.
CREATE TABLE audit_events_appended (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    recorded_ms  INTEGER NOT NULL,
    outcome      TEXT    NOT NULL,
    content      TEXT    NOT NULL,
    hash         TEXT    NOT NULL
);
INSERT INTO audit_events_appended (seq, id, recorded_ms, outcome, content, hash)
SELECT seq, id, recorded_ms, outcome, content, hash FROM audit_events ORDER BY seq;
DROP TABLE audit_events;
ALTER TABLE audit_events_appended RENAME TO audit_events;
CREATE INDEX audit_events_recorded ON audit_events (recorded_ms);

CREATE TABLE audit_subjects_indexed (
    kind   TEXT    NOT NULL,
    value  TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (kind, value, seq)
) WITHOUT ROWID;
INSERT OR IGNORE INTO audit_subjects_indexed (kind, value, seq)
SELECT kind, value, seq FROM audit_subjects;
DROP TABLE audit_subjects;
ALTER TABLE audit_subjects_indexed RENAME TO audit_subjects;
