-- The audit trail: one row per AuditEvent, appended in order and never changed. Each row's
-- hash is sha256 of the previous row's hash, its sequence number and its content, so that a
-- row changed, removed or inserted afterwards breaks the chain from that row on; audit_head
-- holds the last sequence number and hash, and is the row a writer locks to append.
CREATE TABLE audit_events (
    seq          BIGINT PRIMARY KEY,
    id           TEXT   NOT NULL UNIQUE,
    recorded_ms  BIGINT NOT NULL,
    outcome      TEXT   NOT NULL,
    content      TEXT   NOT NULL,
    hash         TEXT   NOT NULL
);
CREATE INDEX audit_events_recorded ON audit_events (recorded_ms);

-- Who and whom each event is about, for search: kind 'patient' (a Patient id) or 'agent'
-- (a client id, user reference, AE title or network address).
CREATE TABLE audit_subjects (
    seq    BIGINT NOT NULL,
    kind   TEXT   NOT NULL,
    value  TEXT   NOT NULL
);
CREATE INDEX audit_subjects_value ON audit_subjects (kind, value, seq);

CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY,
    seq   BIGINT  NOT NULL,
    hash  TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
