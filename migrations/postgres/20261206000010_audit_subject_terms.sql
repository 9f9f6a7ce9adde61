-- Who and whom each audit record is about, as index terms on the record's row instead of a
-- B-tree table of (kind, value, seq): each subject one term ('X' and the hex of "kind:value",
-- which the text search parser keeps whole), under a GIN index whose pending list takes a
-- batch's entries at once, where the table took a random page write per patient per batch.
ALTER TABLE audit_events ADD COLUMN subject_terms TEXT NOT NULL DEFAULT '';
UPDATE audit_events e
SET subject_terms = s.terms
FROM (
    SELECT seq,
           string_agg('X' || upper(encode(convert_to(kind || ':' || value, 'UTF8'), 'hex')), ' ')
               AS terms
    FROM audit_subjects
    GROUP BY seq
) s
WHERE e.seq = s.seq;
CREATE INDEX audit_events_subject_terms ON audit_events
    USING gin (to_tsvector('simple', subject_terms)) WITH (fastupdate = on);
DROP TABLE audit_subjects;
