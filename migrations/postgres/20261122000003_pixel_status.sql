-- Whether an instance's pixel data decodes: 'decodable', 'undecodable' (with the reason, which
-- names the codec problem and never pixel values), or 'none' for objects without pixel data.
ALTER TABLE dicom_instances ADD COLUMN pixel_status TEXT NOT NULL DEFAULT 'unchecked';
ALTER TABLE dicom_instances ADD COLUMN pixel_error TEXT;
