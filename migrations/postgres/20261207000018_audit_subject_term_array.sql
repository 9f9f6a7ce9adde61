-- The audit trail's subject terms indexed as an array of terms rather than a text search
-- vector: the same GIN index and fast update, without running the text search parser on every
-- row. Measured on 100,000 rows inserted at once: 12 us a row instead of 20.5 (8.9 without
-- any subject index).
CREATE INDEX audit_events_subject_term_array ON audit_events
    USING gin (string_to_array(subject_terms, ' ')) WITH (fastupdate = on);
DROP INDEX audit_events_subject_terms;
