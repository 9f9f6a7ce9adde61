-- Image embeddings, each for the model (manifest name and version) that made it. Vectors are
-- float32, little endian. An instance's embedding is the mean of its frames'; a series' the mean
-- of its instances'; a study's the mean of its series', so that every series weighs the same
-- whatever its number of slices. An instance whose embedding failed keeps its error and no vector.
CREATE TABLE instance_embeddings (
    sop_instance_uid TEXT    NOT NULL,
    model            TEXT    NOT NULL,
    model_version    TEXT    NOT NULL,
    -- The file embedded: a replaced instance is embedded again.
    sha256           TEXT    NOT NULL,
    series_uid       TEXT    NOT NULL,
    study_uid        TEXT    NOT NULL,
    frames           BIGINT NOT NULL,
    embedding        BYTEA,
    error            TEXT,
    created_ms       BIGINT NOT NULL,
    PRIMARY KEY (sop_instance_uid, model)
);
CREATE INDEX instance_embeddings_by_series ON instance_embeddings (series_uid, model);

CREATE TABLE series_embeddings (
    series_uid    TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    model_version TEXT    NOT NULL,
    study_uid     TEXT    NOT NULL,
    instances     BIGINT NOT NULL,
    embedding     BYTEA NOT NULL,
    created_ms    BIGINT NOT NULL,
    PRIMARY KEY (series_uid, model)
);
CREATE INDEX series_embeddings_by_study ON series_embeddings (study_uid, model);

CREATE TABLE study_embeddings (
    study_uid     TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    model_version TEXT    NOT NULL,
    series_count  BIGINT NOT NULL,
    instances     BIGINT NOT NULL,
    embedding     BYTEA NOT NULL,
    created_ms    BIGINT NOT NULL,
    PRIMARY KEY (study_uid, model)
);
