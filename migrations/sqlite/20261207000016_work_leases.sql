-- Work shared by the replicas on one database is claimed with a lease: its holder (a replica's
-- id, new at each start) renews it while working, and another replica takes the work over once
-- the lease has run out (the holder died). An asynchronous assessment carries its lease in its
-- row; other work (embedding an instance, the monitoring pass) in work_leases, a row per item,
-- removed when the work is done.
ALTER TABLE risk_jobs ADD COLUMN lease_holder TEXT;
ALTER TABLE risk_jobs ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;
CREATE TABLE work_leases (
    kind      TEXT    NOT NULL,
    item      TEXT    NOT NULL,
    holder    TEXT    NOT NULL,
    until_ms  INTEGER  NOT NULL,
    PRIMARY KEY (kind, item)
);
