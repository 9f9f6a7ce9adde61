-- A failed $risk-assessment job records what kind of error ended it (error_kind: invalid,
-- not-found, unprocessable, overloaded, unavailable, internal, ...), not an HTTP status: each
-- edge that shows it (HTTP, CDS Hooks) maps the kind its own way. Jobs recorded with a status
-- get the kind it was made from. error_status is no longer written.
ALTER TABLE risk_jobs ADD COLUMN error_kind TEXT;
UPDATE risk_jobs SET error_kind = CASE error_status
    WHEN 400 THEN 'invalid'
    WHEN 404 THEN 'not-found'
    WHEN 410 THEN 'gone'
    WHEN 422 THEN 'unprocessable'
    WHEN 429 THEN 'overloaded'
    WHEN 503 THEN 'unavailable'
    ELSE 'internal'
END
WHERE status = 'failed';
