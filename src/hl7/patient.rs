//! The patient a message is about: PID read into identifiers, names, birth date, sex,
//! addresses, phone numbers and death. ADT messages carry it to be kept; ORU and ORM/OMI
//! messages name it so that results and orders find their Patient.

use super::ack::{ErrorCondition, MessageProblem};
use super::fields::{Repeat, SegmentReader};

/// An identifier (CX) from PID-3: value, who assigned it and what kind it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hl7Identifier {
    pub value: String,
    /// Assigning authority (CX-4, an HD): namespace id, universal id and its type (`ISO` for an
    /// OID, `URI`, …).
    pub authority: Authority,
    /// CX-5, table 0203 (`MR` medical record number, `PI` patient internal id …).
    pub type_code: String,
}

/// An HD (hierarchic designator): who assigned a number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Authority {
    pub namespace: String,
    pub universal_id: String,
    pub universal_id_type: String,
}

impl Authority {
    /// The FHIR `Identifier.system` this authority stands for: a configured URI for its
    /// namespace, else its OID (`urn:oid:…`) or URI; `None` when nothing names one.
    pub fn system(&self, configured: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        if !self.namespace.is_empty()
            && let Some(system) = configured(&self.namespace)
        {
            return Some(system);
        }
        let id = self.universal_id.trim();
        match self.universal_id_type.trim().to_ascii_uppercase().as_str() {
            "ISO" if !id.is_empty() => Some(format!("urn:oid:{id}")),
            "URI" | "URL" if !id.is_empty() => Some(id.to_owned()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersonName {
    pub family: String,
    /// Given name, then second and further given names or initials.
    pub given: Vec<String>,
    pub prefix: String,
    pub suffix: String,
    /// XPN-7, table 0200 (`L` legal, `D` display, `M` maiden …).
    pub name_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    pub lines: Vec<String>,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub country: String,
    /// XAD-7, table 0190 (`H` home, `B` business, `M` mailing …).
    pub address_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Telecom {
    /// A telephone number or an e-mail address.
    pub value: String,
    pub email: bool,
    /// XTN-2, table 0201 (`PRN` primary residence, `WPN` work …).
    pub use_code: String,
    /// XTN-3, table 0202 (`PH`, `FX`, `CP` cell phone, `Internet` …).
    pub equipment: String,
}

/// PID, read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PatientDraft {
    pub identifiers: Vec<Hl7Identifier>,
    pub names: Vec<PersonName>,
    /// PID-7, as HL7 DTM.
    pub birth_date: String,
    /// PID-8, table 0001 (F, M, O, U, A, N).
    pub sex: String,
    pub addresses: Vec<Address>,
    pub telecoms: Vec<Telecom>,
    /// PID-29, as HL7 DTM.
    pub death_time: String,
    /// PID-30: `Y`, `N` or empty.
    pub death_indicator: String,
}

impl PatientDraft {
    /// The identifier that names the patient for matching: the medical record number when one
    /// is typed `MR`, else the first.
    pub fn primary_identifier(&self) -> Option<&Hl7Identifier> {
        self.identifiers
            .iter()
            .find(|i| i.type_code.eq_ignore_ascii_case("MR"))
            .or_else(|| self.identifiers.first())
    }
}

/// Reads a PID segment. PID-3 must hold an identifier.
pub fn read_patient(pid: &SegmentReader<'_>) -> Result<PatientDraft, MessageProblem> {
    let identifiers: Vec<Hl7Identifier> = pid
        .repeats(3)
        .iter()
        .map(|r| identifier(pid, r))
        .filter(|i| !i.value.is_empty())
        .collect();
    if identifiers.is_empty() {
        return Err(pid.problem(
            ErrorCondition::RequiredFieldMissing,
            3,
            "PID-3 (patient identifier list) holds no identifier",
        ));
    }
    let names = pid
        .repeats(5)
        .iter()
        .map(|r| PersonName {
            family: pid.repeat_subcomponent(r, 1, 1).trim().to_owned(),
            given: [2, 3]
                .iter()
                .map(|&c| pid.repeat_component(r, c).trim().to_owned())
                .filter(|g| !g.is_empty())
                .collect(),
            suffix: pid.repeat_component(r, 4).trim().to_owned(),
            prefix: pid.repeat_component(r, 5).trim().to_owned(),
            name_type: pid.repeat_component(r, 7).trim().to_owned(),
        })
        .filter(|n| !n.family.is_empty() || !n.given.is_empty())
        .collect();
    let addresses = pid
        .repeats(11)
        .iter()
        .map(|r| Address {
            lines: [pid.repeat_subcomponent(r, 1, 1), pid.repeat_component(r, 2)]
                .into_iter()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect(),
            city: pid.repeat_component(r, 3).trim().to_owned(),
            state: pid.repeat_component(r, 4).trim().to_owned(),
            postal_code: pid.repeat_component(r, 5).trim().to_owned(),
            country: pid.repeat_component(r, 6).trim().to_owned(),
            address_type: pid.repeat_component(r, 7).trim().to_owned(),
        })
        .filter(|a| !a.lines.is_empty() || !a.city.is_empty() || !a.postal_code.is_empty())
        .collect();
    let mut telecoms = Vec::new();
    for (field, default_use) in [(13, "PRN"), (14, "WPN")] {
        for r in pid.repeats(field) {
            if let Some(t) = telecom(pid, &r, default_use) {
                telecoms.push(t);
            }
        }
    }
    Ok(PatientDraft {
        identifiers,
        names,
        birth_date: pid.raw(7).trim().to_owned(),
        sex: pid.raw(8).trim().to_ascii_uppercase(),
        addresses,
        telecoms,
        death_time: pid.raw(29).trim().to_owned(),
        death_indicator: pid.raw(30).trim().to_ascii_uppercase(),
    })
}

fn identifier(pid: &SegmentReader<'_>, r: &Repeat<'_>) -> Hl7Identifier {
    Hl7Identifier {
        value: pid.repeat_component(r, 1).trim().to_owned(),
        authority: Authority {
            namespace: pid.repeat_subcomponent(r, 4, 1).trim().to_owned(),
            universal_id: pid.repeat_subcomponent(r, 4, 2).trim().to_owned(),
            universal_id_type: pid.repeat_subcomponent(r, 4, 3).trim().to_owned(),
        },
        type_code: pid.repeat_component(r, 5).trim().to_owned(),
    }
}

/// An XTN: the e-mail address (XTN-4) for Internet addresses; else the number from its parts
/// (country, area, local number, extension), else the unformatted XTN-1.
fn telecom(pid: &SegmentReader<'_>, r: &Repeat<'_>, default_use: &str) -> Option<Telecom> {
    let use_code = match pid.repeat_component(r, 2).trim() {
        "" => default_use.to_owned(),
        code => code.to_owned(),
    };
    let equipment = pid.repeat_component(r, 3).trim().to_owned();
    let email = pid.repeat_component(r, 4).trim().to_owned();
    if !email.is_empty() || equipment.eq_ignore_ascii_case("Internet") {
        let value = if email.is_empty() {
            pid.repeat_component(r, 1).trim().to_owned()
        } else {
            email
        };
        return (!value.is_empty()).then_some(Telecom {
            value,
            email: true,
            use_code,
            equipment,
        });
    }
    let parts: Vec<String> = [5, 6, 7]
        .iter()
        .map(|&c| pid.repeat_component(r, c).trim().to_owned())
        .collect();
    let mut value = if parts[2].is_empty() {
        pid.repeat_component(r, 1).trim().to_owned()
    } else {
        let country = if parts[0].is_empty() {
            String::new()
        } else {
            format!("+{} ", parts[0])
        };
        let area = if parts[1].is_empty() {
            String::new()
        } else {
            format!("({}) ", parts[1])
        };
        format!("{country}{area}{}", parts[2])
    };
    let extension = pid.repeat_component(r, 8);
    if !extension.trim().is_empty() && !value.is_empty() {
        value = format!("{value} x{}", extension.trim());
    }
    (!value.is_empty()).then_some(Telecom {
        value,
        email: false,
        use_code,
        equipment,
    })
}
