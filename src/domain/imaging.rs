//! Imaging vocabulary: DICOM UIDs and the attributes of a stored instance that the service
//! keeps as rows (patient, study, series, instance). Values such as names and dates are PHI:
//! they are stored and served, never logged.

use std::fmt;

/// Why a DICOM UID could not be parsed. Carries no value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a DICOM UID must be 1 to 64 characters of digits and dots, with no empty component")]
pub struct UidError;

/// A DICOM unique identifier (PS3.5 §9.1): components of digits separated by dots, at most 64
/// characters. The trailing NUL or space padding of the encoded value is removed on parsing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DicomUid(String);

impl DicomUid {
    pub fn parse(s: &str) -> Result<Self, UidError> {
        let s = s.trim_end_matches(['\0', ' ']).trim_start();
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.split('.')
                .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(UidError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The UID as a URN (`urn:oid:…`), the form FHIR identifiers use.
    pub fn urn(&self) -> String {
        format!("urn:oid:{}", self.0)
    }
}

impl AsRef<str> for DicomUid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DicomUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 of a stored file's bytes, as 64 lowercase hex digits: its address in the file
/// store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContentHash(String);

impl ContentHash {
    /// Accepts exactly 64 lowercase hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A date in DICOM's DA form (`YYYYMMDD`), from DA as files carry it: `YYYYMMDD`, or the
/// ACR-NEMA `YYYY.MM.DD` that older files still hold. None for anything else (a range, a
/// partial or an impossible date).
pub fn dicom_date(text: &str) -> Option<String> {
    let text = text.trim();
    let digits: String = match text.len() {
        8 => text.to_owned(),
        10 if text.as_bytes()[4] == b'.' && text.as_bytes()[7] == b'.' => text.replace('.', ""),
        _ => return None,
    };
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, d) = (&digits[..4], &digits[4..6], &digits[6..]);
    chrono::NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?;
    Some(digits)
}

/// Patient-level attributes of an instance (PS3.3 C.7.1.1), as encoded: the name in DICOM PN
/// form (`Family^Given^Middle^Prefix^Suffix`), the birth date as `YYYYMMDD`, sex `M`/`F`/`O`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatientAttributes {
    pub id: Option<String>,
    pub issuer: Option<String>,
    pub name: Option<String>,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
}

/// Study-level attributes (PS3.3 C.7.2.1); date `YYYYMMDD`, time `HHMMSS.FFFFFF`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StudyAttributes {
    pub date: Option<String>,
    pub time: Option<String>,
    pub accession_number: Option<String>,
    pub description: Option<String>,
    pub study_id: Option<String>,
    pub referring_physician: Option<String>,
}

/// Series-level attributes (PS3.3 C.7.3.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesAttributes {
    pub modality: Option<String>,
    pub number: Option<i64>,
    pub description: Option<String>,
    pub body_part: Option<String>,
}

/// What the service records of one DICOM instance, read from its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DicomInstance {
    pub sop_class_uid: DicomUid,
    pub sop_instance_uid: DicomUid,
    pub study_uid: DicomUid,
    pub series_uid: DicomUid,
    pub transfer_syntax_uid: String,
    pub patient: PatientAttributes,
    pub study: StudyAttributes,
    pub series: SeriesAttributes,
    pub instance_number: Option<i64>,
    /// 1 for single-frame images; absent for objects without pixel data.
    pub number_of_frames: Option<i64>,
    pub rows: Option<i64>,
    pub columns: Option<i64>,
    pub has_pixel_data: bool,
    /// What was wrong with the file and read anyway (trailing padding, no file meta): each
    /// logged as a warning when the instance is stored, and answered as a warning status.
    pub tolerated: Vec<Tolerated>,
}

/// A fault in a file that real devices write, and dcmtk and pydicom read past; so is it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tolerated {
    /// Bytes after the data set's last element (padding, or a tail too short to be an
    /// element), left out.
    TrailingBytes(usize),
    /// No preamble and no file meta: the data set read bare, its transfer syntax told by its
    /// first element.
    BareDataSet,
    /// A file meta that could not be read: the data set after it read bare, likewise.
    UnreadableMeta,
}

impl fmt::Display for Tolerated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tolerated::TrailingBytes(n) => {
                write!(f, "{n} bytes after the data set ignored (trailing padding)")
            }
            Tolerated::BareDataSet => f.write_str(
                "no preamble and no file meta: read as a bare data set, its transfer syntax \
                 told by its first element",
            ),
            Tolerated::UnreadableMeta => f.write_str(
                "the file meta could not be read: the data set after it read as a bare one, \
                 its transfer syntax told by its first element",
            ),
        }
    }
}

/// Whether an instance's pixel data decodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PixelStatus {
    Decodable,
    /// Stored, but no decoder handles it; the reason names the codec problem, never values.
    Undecodable {
        reason: String,
    },
    /// The object carries no pixel data (a structured report, an RT plan, …).
    None,
}

impl PixelStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            PixelStatus::Decodable => "decodable",
            PixelStatus::Undecodable { .. } => "undecodable",
            PixelStatus::None => "none",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            PixelStatus::Undecodable { reason } => Some(reason),
            _ => None,
        }
    }
}

/// How a stored instance relates to what was there before it arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// The first copy of this SOP instance.
    Created,
    /// The same bytes were already stored: nothing changed.
    Unchanged,
    /// The SOP instance was stored before with other bytes; the new file is now current and the
    /// earlier one is kept in the file store.
    Replaced,
}

/// The model that made an embedding: its manifest name and version. Embeddings made by another
/// version are stale and computed again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelVersion {
    pub name: String,
    pub version: String,
}

#[cfg(test)]
mod date_tests {
    use super::dicom_date;

    #[test]
    fn dates_are_written_as_da_whatever_form_the_file_had() {
        assert_eq!(dicom_date("19950626").as_deref(), Some("19950626"));
        assert_eq!(dicom_date("1995.06.26").as_deref(), Some("19950626"));
        assert_eq!(dicom_date(" 1995.06.26 ").as_deref(), Some("19950626"));
        assert_eq!(dicom_date("1995.13.26"), None);
        assert_eq!(dicom_date("19950631"), None);
        assert_eq!(dicom_date("1995-06-26"), None);
        assert_eq!(dicom_date("19950626-19950630"), None);
    }
}
