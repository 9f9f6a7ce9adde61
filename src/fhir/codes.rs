//! The codes by which clinical facts are recognised in FHIR resources: mCODE's tumour markers
//! and TNM stage groups, Genomics Reporting's variant components, and the answer codes they use.

pub const LOINC: &str = "http://loinc.org";

/// LOINC codes of the tumour markers mCODE models (receptor status and Ki-67).
pub const TUMOUR_MARKERS: &[&str] = &[
    "16112-5", "85337-4", "40556-3", // oestrogen receptor
    "16113-3", "85339-0", "40557-1", // progesterone receptor
    "48676-1", "85319-2", "85318-4", "18474-7", "72383-3", // HER2
    "85330-9", "29593-9", // Ki-67
];

/// LOINC 69548-6, "Genetic variant assessment": a Genomics Reporting / mCODE variant.
pub const VARIANT: &str = "69548-6";
/// LOINC 53041-0, "DNA region of interest panel": Genomics Reporting's region studied.
pub const REGION_STUDIED: &str = "53041-0";

/// Variant components (LOINC).
pub const GENE_STUDIED: &str = "48018-6";
pub const DNA_CHANGE: &str = "48004-6";
pub const GENOMIC_DNA_CHANGE: &str = "81290-9";
pub const AMINO_ACID_CHANGE: &str = "48005-3";
pub const CLINICAL_SIGNIFICANCE: &str = "53037-8";
pub const GENOMIC_SOURCE: &str = "48002-0";

/// LOINC answers for a variant's presence.
pub const PRESENT: &str = "LA9633-4";
pub const ABSENT: &str = "LA9634-2";

/// LOINC answers (LL4034-6) for clinical significance that do not make a gene "affected".
pub const NOT_PATHOGENIC: &[&str] = &[
    "LA6675-8",  // benign
    "LA26334-5", // likely benign
    "LA26333-7", // uncertain significance
];

/// Codes of TNM stage-group Observations: SNOMED CT (mCODE 3+), LOINC (mCODE 1).
pub const STAGE_GROUPS: &[(&str, StageKind)] = &[
    ("399537006", StageKind::Clinical),
    ("399588009", StageKind::Pathologic),
    ("399390009", StageKind::Unspecified),
    ("21908-9", StageKind::Clinical),
    ("21902-2", StageKind::Pathologic),
    ("21914-7", StageKind::Unspecified),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    Unspecified,
    Clinical,
    Pathologic,
}

/// Codes of staging Observations whatever their category: mCODE's cancer stage types (TNM
/// categories and stage groups, FIGO, lymphoma, Dukes, Gleason, Binet, Rai, ISS … in SNOMED CT
/// and NCIt) and the LOINC TNM classes of mCODE 1.
pub const STAGING: &[&str] = &[
    // SNOMED CT: TNM.
    "399566009",
    "78873005",
    "277206009",
    "277208005",
    "399703000",
    "399437009",
    "399458003",
    "399556001",
    "106248000",
    "399387003",
    "399534004",
    "399504009",
    "106249008",
    "371497001",
    "371494008",
    "384625004",
    "399390009",
    "399537006",
    "399588009",
    // SNOMED CT: other staging systems.
    "385361009",
    "385363007",
    "385365000",
    "385367008",
    "385375002",
    "385369006",
    "385373009",
    "385388004",
    "385349001",
    "103420007",
    "385357003",
    "17964000",
    "371495009",
    "409720004",
    "405931009",
    "405916000",
    "385377005",
    "1342413004",
    "106243009",
    "103419001",
    // NCIt.
    "C134969",
    "C90529",
    "C90530",
    "C177555",
    "C177556",
    "C132248",
    "C180901",
    "C177558",
    "C177559",
    "C141138",
    "C115134",
    "C141212",
    "C141207",
    "C139445",
    "C139446",
    "C139006",
    "C141099",
    "C186618",
    "C186617",
    "C157232",
    "C28067",
    "C139007",
    "C141392",
    "C141147",
    "C143151",
    "C146847",
    "C16899",
    "C174125",
    "C141461",
    "C133427",
    "C198190",
    // LOINC TNM (pathology T, N, M, stage; clinical T, N, M, stage; stage unspecified).
    "21899-0",
    "21900-6",
    "21901-4",
    "21902-2",
    "21905-5",
    "21906-3",
    "21907-1",
    "21908-9",
    "21914-7",
];

/// Codes of a pathological (rather than clinical) regional nodes category: SNOMED CT pN
/// category, LOINC "Regional lymph nodes.pathology [Class] Cancer".
pub const PATHOLOGIC_N_CATEGORY: &[&str] = &["371494008", "21900-6"];

/// The service's codes (CodeSystem prognostics) of the positive regional lymph node ranges that
/// breast cancer's N0 to N3 categories stand for (AJCC 8th edition), by N.
pub const NODE_RANGE_CODES: [&str; 4] = [
    "positive-nodes-0",
    "positive-nodes-1-3",
    "positive-nodes-4-9",
    "positive-nodes-10-plus",
];

/// The N (0 to 3) a node range code stands for.
pub fn node_range_category(code: &str) -> Option<u8> {
    NODE_RANGE_CODES
        .iter()
        .position(|c| *c == code)
        .and_then(|n| u8::try_from(n).ok())
}

/// The N of an AJCC regional nodes category in words: "American Joint Committee on Cancer
/// pN1a (qualifier value)", "cN2", "ypN0(i+)", "N3c". None for NX or no category.
pub fn parse_n_category(text: &str) -> Option<u8> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find_map(|at| {
        let prefix_ok = at == 0
            || !bytes[at - 1].is_ascii_alphabetic()
            || (matches!(bytes[at - 1], b'c' | b'p' | b'y')
                && (at < 2
                    || !bytes[at - 2].is_ascii_alphabetic()
                    || (bytes[at - 2] == b'y' && bytes[at - 1] == b'p')));
        if bytes[at] != b'N' || !prefix_ok {
            return None;
        }
        match bytes.get(at + 1) {
            Some(d @ b'0'..=b'3') => Some(d - b'0'),
            _ => None,
        }
    })
}

/// Answers meaning "positive" / "negative" (LOINC and SNOMED CT), for tumour markers.
pub const POSITIVE: &[&str] = &["LA6576-8", "10828004", "POS"];
pub const NEGATIVE: &[&str] = &["LA6577-6", "260385009", "NEG"];

/// The stage group (1 to 4, 0 for stage 0 / in situ) and the sub-stage letter in a stage
/// description such as "American Joint Committee on Cancer stage IIIC (qualifier value)",
/// "Stage IIB", "IIIA" or "3C".
pub fn parse_stage_group(text: &str) -> Option<(u8, Option<char>)> {
    let lower = text.to_ascii_lowercase();
    let after = match lower.rfind("stage ") {
        Some(at) => &text[at + 6..],
        None => text,
    };
    let token: String = after
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let upper = token.to_ascii_uppercase();
    let (group, rest) = [
        ("IV", 4),
        ("III", 3),
        ("II", 2),
        ("I", 1),
        ("4", 4),
        ("3", 3),
        ("2", 2),
        ("1", 1),
        ("0", 0),
    ]
    .iter()
    .find_map(|(prefix, group)| upper.strip_prefix(prefix).map(|rest| (*group, rest)))?;
    let letter = match rest {
        "" => None,
        r if r.len() == 1 && r.chars().all(|c| matches!(c, 'A'..='D')) => r.chars().next(),
        "IS" if group == 0 => None,
        _ => return None,
    };
    Some((group, letter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_groups_are_read_from_their_descriptions() {
        let cases = [
            (
                "American Joint Committee on Cancer stage IIIC (qualifier value)",
                Some((3, Some('C'))),
            ),
            (
                "American Joint Committee on Cancer stage IIB (qualifier value)",
                Some((2, Some('B'))),
            ),
            ("Stage IV", Some((4, None))),
            ("stage 0is", Some((0, None))),
            ("IIIA", Some((3, Some('A')))),
            ("3C", Some((3, Some('C')))),
            ("Stage unknown", None),
            ("Stage IIX", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_stage_group(text), expected, "{text}");
        }
    }
}

#[cfg(test)]
mod n_category_tests {
    use super::*;

    #[test]
    fn n_categories_are_read_in_ajcc_notation() {
        let cases = [
            (
                "American Joint Committee on Cancer pN1a (qualifier value)",
                Some(1),
            ),
            ("cN0", Some(0)),
            ("ypN2", Some(2)),
            ("N3c", Some(3)),
            ("pN0(i+)", Some(0)),
            ("pNX", None),
            ("Nottingham grade 2", None),
            ("T2N1M0", Some(1)),
            ("stage IIA", None),
        ];
        for (text, n) in cases {
            assert_eq!(parse_n_category(text), n, "{text}");
        }
        assert_eq!(node_range_category("positive-nodes-4-9"), Some(2));
    }
}
