//! Patient from an HL7 v2 PID: made when the message names a patient the store does not have,
//! and, for ADT messages, merged into the one it has (demographics replaced by the message's,
//! identifiers added to).

use fhir_sdk::r4b::codes::{
    AddressType, AddressUse, AdministrativeGender, ContactPointSystem, ContactPointUse, NameUse,
};
use fhir_sdk::r4b::resources::{Patient, PatientDeceased};
use fhir_sdk::r4b::types::{Address, ContactPoint, HumanName};
use serde_json::{Map, Value};

use super::v2::{IdentifierSystems, identifier};
use super::{ReportError, build_err, to_value};
use crate::domain::ResourceId;
use crate::hl7::patient::PatientDraft;

/// The elements of a Patient an ADT message replaces when it sends them.
const DEMOGRAPHICS: &[&str] = &[
    "name",
    "gender",
    "birthDate",
    "address",
    "telecom",
    "deceasedBoolean",
    "deceasedDateTime",
];

/// A Patient with the identifiers, names, sex, birth date, addresses, phone numbers and death
/// a PID sends, as R4 JSON.
pub fn patient_from_hl7(
    id: &ResourceId,
    draft: &PatientDraft,
    systems: IdentifierSystems<'_>,
) -> Result<Value, ReportError> {
    let identifiers = draft
        .identifiers
        .iter()
        .map(|i| identifier(&i.value, &i.authority, &i.type_code, systems).map(Some))
        .collect::<Result<Vec<_>, _>>()?;
    let mut b = Patient::builder()
        .id(id.to_string())
        .identifier(identifiers);
    let names = draft
        .names
        .iter()
        .map(|n| {
            let mut b =
                HumanName::builder().given(n.given.iter().map(|g| Some(g.clone())).collect());
            if !n.family.is_empty() {
                b = b.family(n.family.clone());
            }
            if !n.prefix.is_empty() {
                b = b.prefix(vec![Some(n.prefix.clone())]);
            }
            if !n.suffix.is_empty() {
                b = b.suffix(vec![Some(n.suffix.clone())]);
            }
            let name_use = match n.name_type.as_str() {
                "L" => Some(NameUse::Official),
                "D" => Some(NameUse::Usual),
                "M" => Some(NameUse::Maiden),
                "N" => Some(NameUse::Nickname),
                "S" => Some(NameUse::Anonymous),
                _ => None,
            };
            if let Some(u) = name_use {
                b = b.r#use(u);
            }
            b.build().map(Some).map_err(build_err("Patient.name"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !names.is_empty() {
        b = b.name(names);
    }
    if let Some(g) = gender(&draft.sex) {
        b = b.gender(g);
    }
    let addresses = draft
        .addresses
        .iter()
        .map(|a| {
            let mut b = Address::builder().line(a.lines.iter().map(|l| Some(l.clone())).collect());
            if !a.city.is_empty() {
                b = b.city(a.city.clone());
            }
            if !a.state.is_empty() {
                b = b.state(a.state.clone());
            }
            if !a.postal_code.is_empty() {
                b = b.postal_code(a.postal_code.clone());
            }
            if !a.country.is_empty() {
                b = b.country(a.country.clone());
            }
            match a.address_type.as_str() {
                "H" => b = b.r#use(AddressUse::Home),
                "B" | "O" => b = b.r#use(AddressUse::Work),
                "C" => b = b.r#use(AddressUse::Temp),
                "M" => b = b.r#type(AddressType::Postal),
                _ => {}
            }
            b.build().map(Some).map_err(build_err("Patient.address"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !addresses.is_empty() {
        b = b.address(addresses);
    }
    let telecoms = draft
        .telecoms
        .iter()
        .map(|t| {
            let system = if t.email {
                ContactPointSystem::Email
            } else if t.equipment.eq_ignore_ascii_case("FX") {
                ContactPointSystem::Fax
            } else if t.equipment.eq_ignore_ascii_case("BP") {
                ContactPointSystem::Pager
            } else {
                ContactPointSystem::Phone
            };
            let mut b = ContactPoint::builder()
                .system(system)
                .value(t.value.clone());
            let contact_use = if t.equipment.eq_ignore_ascii_case("CP") {
                Some(ContactPointUse::Mobile)
            } else {
                match t.use_code.as_str() {
                    "PRN" | "ORN" | "VHN" => Some(ContactPointUse::Home),
                    "WPN" => Some(ContactPointUse::Work),
                    _ => None,
                }
            };
            if let Some(u) = contact_use {
                b = b.r#use(u);
            }
            b.build().map(Some).map_err(build_err("Patient.telecom"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !telecoms.is_empty() {
        b = b.telecom(telecoms);
    }
    match draft.death_indicator.as_str() {
        _ if !draft.death_time.is_empty() => {}
        "Y" => b = b.deceased(PatientDeceased::Boolean(true)),
        "N" => b = b.deceased(PatientDeceased::Boolean(false)),
        _ => {}
    }
    let patient = b.build().map_err(build_err("Patient"))?;
    let mut value = to_value("Patient", &patient)?;
    if let Some(object) = value.as_object_mut() {
        // Dates as sent, at their precision (fhir-sdk's types would need them re-parsed).
        if !draft.birth_date.is_empty() {
            object.insert("birthDate".into(), Value::String(draft.birth_date.clone()));
        }
        if !draft.death_time.is_empty() {
            object.insert(
                "deceasedDateTime".into(),
                Value::String(draft.death_time.clone()),
            );
        }
    }
    Ok(value)
}

/// HL7 table 0001 as FHIR administrative gender.
fn gender(sex: &str) -> Option<AdministrativeGender> {
    match sex {
        "F" => Some(AdministrativeGender::Female),
        "M" => Some(AdministrativeGender::Male),
        "O" | "A" => Some(AdministrativeGender::Other),
        "U" | "N" => Some(AdministrativeGender::Unknown),
        _ => None,
    }
}

/// An ADT update applied to a stored Patient: each demographic element the message sends
/// replaces the stored one (a deceased flag replaces a deceased time and the other way round);
/// identifiers the stored Patient lacks are added; everything else is kept.
pub fn merge_patient(stored: &Map<String, Value>, update: &Value) -> Map<String, Value> {
    let mut merged = stored.clone();
    let Some(update) = update.as_object() else {
        return merged;
    };
    let sends_death =
        update.contains_key("deceasedBoolean") || update.contains_key("deceasedDateTime");
    if sends_death {
        merged.remove("deceasedBoolean");
        merged.remove("deceasedDateTime");
    }
    for key in DEMOGRAPHICS {
        if let Some(value) = update.get(*key) {
            merged.insert((*key).to_owned(), value.clone());
        }
    }
    let mut identifiers = merged
        .get("identifier")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let same = |a: &Value, b: &Value| {
        a.get("system") == b.get("system") && a.get("value") == b.get("value")
    };
    for new in update
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !identifiers.iter().any(|old| same(old, new)) {
            identifiers.push(new.clone());
        }
    }
    if !identifiers.is_empty() {
        merged.insert("identifier".into(), Value::Array(identifiers));
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_adt_update_replaces_demographics_and_adds_identifiers() {
        let stored = json!({
            "resourceType": "Patient", "id": "p1",
            "identifier": [{"system": "urn:a", "value": "1"}],
            "name": [{"family": "DOE"}],
            "deceasedBoolean": false,
            "generalPractitioner": [{"display": "Dr Who"}]
        });
        let update = json!({
            "resourceType": "Patient", "id": "p1",
            "identifier": [{"system": "urn:a", "value": "1"}, {"value": "2"}],
            "name": [{"family": "SMITH"}],
            "deceasedDateTime": "2024-02-29"
        });
        let merged = merge_patient(stored.as_object().unwrap(), &update);
        assert_eq!(merged["name"][0]["family"], "SMITH");
        assert_eq!(merged["identifier"].as_array().unwrap().len(), 2);
        assert_eq!(merged["deceasedDateTime"], "2024-02-29");
        assert!(!merged.contains_key("deceasedBoolean"));
        assert_eq!(merged["generalPractitioner"][0]["display"], "Dr Who");
    }
}
