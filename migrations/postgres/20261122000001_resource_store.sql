-- FHIR resource store: the current version of every resource, every version ever written, and
-- the search index of current versions. Instants are epoch milliseconds (UTC).
CREATE TABLE resources (
    resource_type   TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    version_id      BIGINT  NOT NULL,
    last_updated_ms BIGINT  NOT NULL,
    deleted         INTEGER NOT NULL DEFAULT 0,
    content         TEXT,
    PRIMARY KEY (resource_type, id)
);
CREATE INDEX resources_by_last_updated ON resources (resource_type, last_updated_ms, id);

CREATE TABLE resource_versions (
    resource_type   TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    version_id      BIGINT  NOT NULL,
    last_updated_ms BIGINT  NOT NULL,
    deleted         INTEGER NOT NULL DEFAULT 0,
    method          TEXT    NOT NULL,
    content         TEXT,
    PRIMARY KEY (resource_type, id, version_id)
);

CREATE TABLE search_index (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    system        TEXT,
    value         TEXT,
    start_ms      BIGINT,
    end_ms        BIGINT
);
CREATE INDEX search_index_by_value ON search_index (resource_type, param, value);
CREATE INDEX search_index_by_date ON search_index (resource_type, param, start_ms);
CREATE INDEX search_index_by_resource ON search_index (resource_type, id);
