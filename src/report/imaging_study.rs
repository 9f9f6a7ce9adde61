//! ImagingStudy (and the Patient a study's DICOM names, when the store has none) built from what
//! the DICOM store recorded. Identifiers follow the ImagingStudy implementation notes: the Study
//! Instance UID as `urn:dicom:uid` / `urn:oid:…`, the accession number typed `ACSN`.

use fhir_sdk::r4b::codes::{AdministrativeGender, ImagingStudyStatus};
use fhir_sdk::r4b::resources::{
    ImagingStudy, ImagingStudySeries, ImagingStudySeriesInstance, Patient,
};
use fhir_sdk::r4b::types::{CodeableConcept, HumanName, Identifier, Reference};
use serde_json::Value;

use super::{IDENTIFIER_TYPES, ReportError, build_err, coding, to_value};
use crate::domain::{DicomUid, PatientAttributes, ResourceId, SeriesAttributes, StudyAttributes};

/// `Identifier.system` of a DICOM UID.
pub const DICOM_UID_SYSTEM: &str = "urn:dicom:uid";
/// DICOM's code system (modalities, PS3.16 CID 29).
const DICOM_CODES: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// A URI system, for SOP Class UIDs written as `urn:oid:…`.
const URI_SYSTEM: &str = "urn:ietf:rfc:3986";

/// What an ImagingStudy says: the study, its series and instances as the store has them.
#[derive(Clone, Debug)]
pub struct ImagingStudyContent<'a> {
    pub id: &'a ResourceId,
    pub study_uid: &'a DicomUid,
    pub study: &'a StudyAttributes,
    pub patient: &'a ResourceId,
    pub series: Vec<SeriesContent<'a>>,
}

#[derive(Clone, Debug)]
pub struct SeriesContent<'a> {
    pub uid: &'a DicomUid,
    pub attributes: &'a SeriesAttributes,
    /// (SOP Instance UID, SOP Class UID, Instance Number)
    pub instances: Vec<(&'a DicomUid, &'a DicomUid, Option<i64>)>,
}

/// An ImagingStudy (status `available`) as R4 JSON.
pub fn imaging_study(content: &ImagingStudyContent<'_>) -> Result<Value, ReportError> {
    let mut identifiers = vec![Some(
        Identifier::builder()
            .system(DICOM_UID_SYSTEM.to_owned())
            .value(content.study_uid.urn())
            .build()
            .map_err(build_err("ImagingStudy.identifier"))?,
    )];
    if let Some(accession) = &content.study.accession_number {
        identifiers.push(Some(
            Identifier::builder()
                .r#type(
                    CodeableConcept::builder()
                        .coding(vec![Some(coding(IDENTIFIER_TYPES, "ACSN")?)])
                        .build()
                        .map_err(build_err("Identifier.type"))?,
                )
                .value(accession.clone())
                .build()
                .map_err(build_err("ImagingStudy.identifier"))?,
        ));
    }
    let mut modalities: Vec<&str> = Vec::new();
    let mut series = Vec::with_capacity(content.series.len());
    let mut instance_total = 0u32;
    for s in &content.series {
        let modality = s.attributes.modality.as_deref().unwrap_or("OT");
        if !modalities.contains(&modality) {
            modalities.push(modality);
        }
        let mut instances = Vec::with_capacity(s.instances.len());
        for (uid, class, number) in &s.instances {
            let mut b = ImagingStudySeriesInstance::builder()
                .uid(uid.to_string())
                .sop_class(coding(URI_SYSTEM, &class.urn())?);
            if let Some(n) = number.and_then(|n| u32::try_from(n).ok()) {
                b = b.number(n);
            }
            instances.push(Some(
                b.build()
                    .map_err(build_err("ImagingStudy.series.instance"))?,
            ));
        }
        let count = u32::try_from(instances.len()).unwrap_or(u32::MAX);
        instance_total = instance_total.saturating_add(count);
        let mut b = ImagingStudySeries::builder()
            .uid(s.uid.to_string())
            .modality(coding(DICOM_CODES, modality)?)
            .number_of_instances(count)
            .instance(instances);
        if let Some(n) = s.attributes.number.and_then(|n| u32::try_from(n).ok()) {
            b = b.number(n);
        }
        if let Some(d) = &s.attributes.description {
            b = b.description(d.clone());
        }
        series.push(Some(b.build().map_err(build_err("ImagingStudy.series"))?));
    }
    let mut b = ImagingStudy::builder()
        .id(content.id.to_string())
        .identifier(identifiers)
        .status(ImagingStudyStatus::Available)
        .modality(
            modalities
                .iter()
                .map(|m| coding(DICOM_CODES, m).map(Some))
                .collect::<Result<Vec<_>, _>>()?,
        )
        .subject(
            Reference::builder()
                .reference(format!("Patient/{}", content.patient))
                .build()
                .map_err(build_err("ImagingStudy.subject"))?,
        )
        .number_of_series(u32::try_from(series.len()).unwrap_or(u32::MAX))
        .number_of_instances(instance_total)
        .series(series);
    if let Some(d) = &content.study.description {
        b = b.description(d.clone());
    }
    let study = b.build().map_err(build_err("ImagingStudy"))?;
    let mut value = to_value("ImagingStudy", &study)?;
    // StudyDate alone: a StudyTime without a UTC offset cannot be a FHIR dateTime.
    if let Some(date) = content.study.date.as_deref().and_then(fhir_date)
        && let Some(object) = value.as_object_mut()
    {
        object.insert("started".to_owned(), Value::String(date));
    }
    Ok(value)
}

/// A Patient carrying the DICOM Patient ID (typed `MR`, under `system` when one is configured),
/// with the name, sex and birth date the DICOM says, as R4 JSON.
pub fn patient_from_dicom(
    id: &ResourceId,
    system: Option<&str>,
    patient_id: &str,
    attributes: &PatientAttributes,
) -> Result<Value, ReportError> {
    let mut identifier = Identifier::builder()
        .r#type(
            CodeableConcept::builder()
                .coding(vec![Some(coding(IDENTIFIER_TYPES, "MR")?)])
                .build()
                .map_err(build_err("Identifier.type"))?,
        )
        .value(patient_id.to_owned());
    if let Some(system) = system {
        identifier = identifier.system(system.to_owned());
    }
    let identifier = identifier
        .build()
        .map_err(build_err("Patient.identifier"))?;
    let mut b = Patient::builder()
        .id(id.to_string())
        .identifier(vec![Some(identifier)]);
    if let Some(name) = attributes.name.as_deref().and_then(human_name) {
        b = b.name(vec![Some(name?)]);
    }
    let gender = match attributes.sex.as_deref() {
        Some("M") => Some(AdministrativeGender::Male),
        Some("F") => Some(AdministrativeGender::Female),
        Some("O") => Some(AdministrativeGender::Other),
        _ => None,
    };
    if let Some(g) = gender {
        b = b.gender(g);
    }
    let patient = b.build().map_err(build_err("Patient"))?;
    let mut value = to_value("Patient", &patient)?;
    if let Some(date) = attributes.birth_date.as_deref().and_then(fhir_date)
        && let Some(object) = value.as_object_mut()
    {
        object.insert("birthDate".to_owned(), Value::String(date));
    }
    Ok(value)
}

/// DICOM PN (first component group, `Family^Given^Middle^Prefix^Suffix`) as a HumanName.
fn human_name(pn: &str) -> Option<Result<HumanName, ReportError>> {
    let alphabetic = pn.split('=').next().unwrap_or_default();
    let parts: Vec<&str> = alphabetic.split('^').map(str::trim).collect();
    let part = |i: usize| parts.get(i).copied().filter(|s| !s.is_empty());
    let family = part(0);
    let given: Vec<Option<String>> = [part(1), part(2)]
        .into_iter()
        .flatten()
        .map(|s| Some(s.to_owned()))
        .collect();
    if family.is_none() && given.is_empty() {
        return None;
    }
    let mut b = HumanName::builder().given(given);
    if let Some(f) = family {
        b = b.family(f.to_owned());
    }
    if let Some(p) = part(3) {
        b = b.prefix(vec![Some(p.to_owned())]);
    }
    if let Some(s) = part(4) {
        b = b.suffix(vec![Some(s.to_owned())]);
    }
    Some(b.build().map_err(build_err("Patient.name")))
}

/// DICOM DA (`YYYYMMDD`, or the retired `YYYY.MM.DD`) as a FHIR date, when it is a real date.
fn fhir_date(da: &str) -> Option<String> {
    let digits: String = da.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() != 8 {
        return None;
    }
    let date = chrono::NaiveDate::parse_from_str(&digits, "%Y%m%d").ok()?;
    Some(date.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dicom_person_name_becomes_family_and_given() {
        let name = human_name("Doe^Jane^Q^Dr^III").unwrap().unwrap();
        let v = serde_json::to_value(&name).unwrap();
        assert_eq!(v["family"], "Doe");
        assert_eq!(v["given"], serde_json::json!(["Jane", "Q"]));
        assert_eq!(v["prefix"][0], "Dr");
        assert_eq!(v["suffix"][0], "III");
        assert!(human_name("^").is_none());
    }

    #[test]
    fn dicom_dates_become_fhir_dates_only_when_valid() {
        assert_eq!(fhir_date("20240229").as_deref(), Some("2024-02-29"));
        assert_eq!(fhir_date("1999.12.31").as_deref(), Some("1999-12-31"));
        assert_eq!(fhir_date("20230229"), None);
        assert_eq!(fhir_date("2023"), None);
    }
}
