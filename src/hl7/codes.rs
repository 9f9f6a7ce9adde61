//! HL7 v2 coding-system names (table 0396) as FHIR code-system URIs, and the checks the service
//! can make on a code without a terminology server (LOINC's check digit).

/// The FHIR system of a v2 coding-system name, when it is one the service knows.
pub fn fhir_system(v2: &str) -> Option<String> {
    let name = v2.trim();
    let known = match name.to_ascii_uppercase().as_str() {
        "LN" | "LOINC" => "http://loinc.org",
        "SCT" | "SNOMED" | "SNOMEDCT" | "SNM3" => "http://snomed.info/sct",
        "UCUM" => "http://unitsofmeasure.org",
        "I10" | "ICD10" => "http://hl7.org/fhir/sid/icd-10",
        "I10C" | "ICD10CM" => "http://hl7.org/fhir/sid/icd-10-cm",
        "I9C" | "I9CDX" | "ICD9CM" => "http://hl7.org/fhir/sid/icd-9-cm",
        "ICDO3" | "ICD-O-3" => "http://terminology.hl7.org/CodeSystem/icd-o-3",
        "C4" | "CPT" | "CPT4" => "http://www.ama-assn.org/go/cpt",
        "RXNORM" | "RXN" => "http://www.nlm.nih.gov/research/umls/rxnorm",
        "CVX" => "http://hl7.org/fhir/sid/cvx",
        "NDC" => "http://hl7.org/fhir/sid/ndc",
        "HGNC" => "http://www.genenames.org/geneId",
        "DCM" => "http://dicom.nema.org/resources/ontology/DCM",
        "RADLEX" | "RID" => "http://radlex.org",
        _ => "",
    };
    if !known.is_empty() {
        return Some(known.to_owned());
    }
    // HL7-defined tables: HL70078, HL70136 …
    let table = name
        .strip_prefix("HL7")
        .filter(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()))?;
    Some(format!("http://terminology.hl7.org/CodeSystem/v2-{table}"))
}

/// The v3 ObservationInterpretation code and display for an OBX-8 abnormal flag (HL7 table
/// 0078, whose codes R4 took over), or `None` for a flag outside the table.
pub fn interpretation(flag: &str) -> Option<(&'static str, &'static str)> {
    Some(match flag {
        "N" => ("N", "Normal"),
        "A" => ("A", "Abnormal"),
        "AA" => ("AA", "Critical abnormal"),
        "H" => ("H", "High"),
        "HH" => ("HH", "Critical high"),
        "HU" => ("HU", "Significantly high"),
        "HX" => ("HX", "above high threshold"),
        "L" => ("L", "Low"),
        "LL" => ("LL", "Critical low"),
        "LU" => ("LU", "Significantly low"),
        "LX" => ("LX", "below low threshold"),
        "<" => ("<", "Off scale low"),
        ">" => (">", "Off scale high"),
        "U" => ("U", "Significant change up"),
        "D" => ("D", "Significant change down"),
        "B" => ("B", "Better"),
        "W" => ("W", "Worse"),
        "S" => ("S", "Susceptible"),
        "R" => ("R", "Resistant"),
        "I" => ("I", "Intermediate"),
        "NEG" => ("NEG", "Negative"),
        "POS" => ("POS", "Positive"),
        "IND" => ("IND", "Indeterminate"),
        "DET" => ("DET", "Detected"),
        "ND" => ("ND", "Not detected"),
        "AC" => ("AC", "Anti-complementary substances present"),
        "RR" => ("RR", "Reactive"),
        "NR" => ("NR", "Non-reactive"),
        "EX" => ("EX", "outside threshold"),
        _ => return None,
    })
}

/// Whether `code` has LOINC's form (digits, a hyphen, and the right mod-10 check digit).
/// A code that fails cannot be a LOINC code; one that passes may still be unknown to LOINC.
pub fn is_well_formed_loinc(code: &str) -> bool {
    let Some((base, check)) = code.split_once('-') else {
        return false;
    };
    if base.is_empty()
        || base.len() > 7
        || check.len() != 1
        || !base
            .bytes()
            .chain(check.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return false;
    }
    // Luhn over the base number: every other digit from the right, starting with the last,
    // is doubled.
    let sum: u32 = base
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                doubled / 10 + doubled % 10
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10 == u32::from(check.as_bytes()[0] - b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loinc_check_digits_are_verified() {
        for good in ["2093-3", "2857-1", "85319-2", "1554-5", "21612-7", "718-7"] {
            assert!(is_well_formed_loinc(good), "{good}");
        }
        for bad in ["2093-4", "2093", "JHDL", "2093-33", "-3", "20a3-3"] {
            assert!(!is_well_formed_loinc(bad), "{bad}");
        }
    }

    #[test]
    fn v2_coding_systems_map_to_fhir_uris() {
        assert_eq!(fhir_system("LN").as_deref(), Some("http://loinc.org"));
        assert_eq!(
            fhir_system("SCT").as_deref(),
            Some("http://snomed.info/sct")
        );
        assert_eq!(
            fhir_system("HL70078").as_deref(),
            Some("http://terminology.hl7.org/CodeSystem/v2-0078")
        );
        assert_eq!(fhir_system("L"), None);
        assert_eq!(fhir_system("99LOCAL"), None);
    }
}
