-- Who and whom each audit record is about, as a full-text index instead of a B-tree of
-- (kind, value, seq): one row per record, its rowid the record's sequence number, each subject
-- one term ('X' and the hex of "kind:value", so that no tokenizer splits it). FTS5 writes a
-- transaction's terms as one new segment and merges segments later, where the B-tree took a
-- random page write per patient on every batch: the audit writer's largest cost under load.
CREATE VIRTUAL TABLE audit_subject_terms USING fts5(terms, content = '', columnsize = 0, detail = none);
INSERT INTO audit_subject_terms (rowid, terms)
SELECT seq, group_concat('X' || hex(kind || ':' || value), ' ')
FROM audit_subjects
GROUP BY seq;
DROP TABLE audit_subjects;
