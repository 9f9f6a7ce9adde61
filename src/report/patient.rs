//! Patient from an HL7 v2 PID: made when the message names a patient the store does not have,
//! and, for ADT messages, merged into the one it has (demographics replaced by the message's,
//! identifiers added to).

use serde_json::{Map, Value, json};

use super::v2::{Element, IdentifierSystems, identifier};
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
) -> Value {
    let identifiers = draft
        .identifiers
        .iter()
        .map(|i| identifier(&i.value, &i.authority, &i.type_code, systems))
        .collect();
    let names = draft
        .names
        .iter()
        .map(|n| {
            let name_use = match n.name_type.as_str() {
                "L" => "official",
                "D" => "usual",
                "M" => "maiden",
                "N" => "nickname",
                "S" => "anonymous",
                _ => "",
            };
            Element::new()
                .text("use", name_use)
                .text("family", &n.family)
                .list("given", n.given.iter().map(|g| json!(g)).collect())
                .list(
                    "prefix",
                    std::iter::once(&n.prefix)
                        .filter(|p| !p.is_empty())
                        .map(|p| json!(p))
                        .collect(),
                )
                .list(
                    "suffix",
                    std::iter::once(&n.suffix)
                        .filter(|s| !s.is_empty())
                        .map(|s| json!(s))
                        .collect(),
                )
                .build()
        })
        .collect();
    let addresses = draft
        .addresses
        .iter()
        .map(|a| {
            let (address_use, address_type) = match a.address_type.as_str() {
                "H" => ("home", ""),
                "B" | "O" => ("work", ""),
                "C" => ("temp", ""),
                "M" => ("", "postal"),
                _ => ("", ""),
            };
            Element::new()
                .text("use", address_use)
                .text("type", address_type)
                .list("line", a.lines.iter().map(|l| json!(l)).collect())
                .text("city", &a.city)
                .text("state", &a.state)
                .text("postalCode", &a.postal_code)
                .text("country", &a.country)
                .build()
        })
        .collect();
    let telecoms = draft
        .telecoms
        .iter()
        .map(|t| {
            let system = if t.email {
                "email"
            } else if t.equipment.eq_ignore_ascii_case("FX") {
                "fax"
            } else if t.equipment.eq_ignore_ascii_case("BP") {
                "pager"
            } else {
                "phone"
            };
            let contact_use = if t.equipment.eq_ignore_ascii_case("CP") {
                "mobile"
            } else {
                match t.use_code.as_str() {
                    "PRN" | "ORN" | "VHN" => "home",
                    "WPN" => "work",
                    _ => "",
                }
            };
            Element::new()
                .set("system", system)
                .set("value", t.value.as_str())
                .text("use", contact_use)
                .build()
        })
        .collect();
    let deceased = match draft.death_indicator.as_str() {
        _ if !draft.death_time.is_empty() => None,
        "Y" => Some(Value::Bool(true)),
        "N" => Some(Value::Bool(false)),
        _ => None,
    };
    Element::resource("Patient")
        .set("id", id.to_string())
        .list("identifier", identifiers)
        .list("name", names)
        .text("gender", gender(&draft.sex))
        // Dates as sent, at their precision.
        .text("birthDate", &draft.birth_date)
        .some("deceasedBoolean", deceased)
        .text("deceasedDateTime", &draft.death_time)
        .list("address", addresses)
        .list("telecom", telecoms)
        .build()
}

/// HL7 table 0001 as FHIR administrative gender.
fn gender(sex: &str) -> &'static str {
    match sex {
        "F" => "female",
        "M" => "male",
        "O" | "A" => "other",
        "U" | "N" => "unknown",
        _ => "",
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
