-- Every HL7 v2 message received (MLLP or HTTP), stored before it is acknowledged, so that
-- nothing acknowledged is lost. The body is the message text with CR between segments (UTF-8).
-- A message sent again (same sender, control id and content) is the same row: re-sends after a
-- lost ACK are answered again without a second copy. status: received, processed or failed
-- (error says why, without message content).
CREATE TABLE hl7_messages (
    id            TEXT    NOT NULL PRIMARY KEY,
    sender        TEXT    NOT NULL,
    control_id    TEXT    NOT NULL,
    message_type  TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    sha256        TEXT    NOT NULL,
    body          BYTEA   NOT NULL,
    status        TEXT    NOT NULL,
    error         TEXT,
    received_ms   BIGINT    NOT NULL,
    UNIQUE (sender, control_id, sha256)
);
CREATE INDEX hl7_messages_by_status ON hl7_messages (status, received_ms);
