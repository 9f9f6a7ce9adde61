-- DICOM store: the studies, series and instances received (by STOW-RS, C-STORE or import),
-- and every file ever stored for an instance. Files live in the content-addressed file store,
-- named by sha256. Instants are epoch milliseconds (UTC).
CREATE TABLE dicom_studies (
    study_uid            TEXT    NOT NULL PRIMARY KEY,
    patient_id           TEXT,
    patient_issuer       TEXT,
    patient_name         TEXT,
    patient_birth_date   TEXT,
    patient_sex          TEXT,
    study_date           TEXT,
    study_time           TEXT,
    accession_number     TEXT,
    study_description    TEXT,
    study_id             TEXT,
    referring_physician  TEXT,
    -- The ImagingStudy resource that mirrors this study, and how far it is up to date: every
    -- stored instance bumps generation; the resource reflects refreshed_generation.
    imaging_study_id     TEXT    NOT NULL,
    generation           BIGINT  NOT NULL DEFAULT 1,
    refreshed_generation BIGINT  NOT NULL DEFAULT 0,
    updated_ms           BIGINT  NOT NULL
);
CREATE INDEX dicom_studies_by_patient ON dicom_studies (patient_id);
CREATE INDEX dicom_studies_by_staleness ON dicom_studies (refreshed_generation, generation);

CREATE TABLE dicom_series (
    series_uid         TEXT    NOT NULL PRIMARY KEY,
    study_uid          TEXT    NOT NULL,
    modality           TEXT,
    series_number      BIGINT ,
    series_description TEXT,
    body_part          TEXT,
    updated_ms         BIGINT  NOT NULL
);
CREATE INDEX dicom_series_by_study ON dicom_series (study_uid);

CREATE TABLE dicom_instances (
    sop_instance_uid TEXT    NOT NULL PRIMARY KEY,
    series_uid       TEXT    NOT NULL,
    study_uid        TEXT    NOT NULL,
    sop_class_uid    TEXT    NOT NULL,
    instance_number  BIGINT ,
    number_of_frames BIGINT ,
    rows_count       BIGINT ,
    columns_count    BIGINT ,
    transfer_syntax  TEXT    NOT NULL,
    sha256           TEXT    NOT NULL,
    size_bytes       BIGINT  NOT NULL,
    received_ms      BIGINT  NOT NULL
);
CREATE INDEX dicom_instances_by_series ON dicom_instances (series_uid);
CREATE INDEX dicom_instances_by_study ON dicom_instances (study_uid);

CREATE TABLE dicom_files (
    sha256           TEXT    NOT NULL PRIMARY KEY,
    sop_instance_uid TEXT    NOT NULL,
    size_bytes       BIGINT  NOT NULL,
    received_ms      BIGINT  NOT NULL
);
CREATE INDEX dicom_files_by_instance ON dicom_files (sop_instance_uid);
