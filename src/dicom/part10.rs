//! DICOM Part 10 files: reading the attributes the service keeps, and wrapping a data set
//! received over DIMSE into a Part 10 file without re-encoding it.

use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, FileMetaTable, FileMetaTableBuilder, OpenFileOptions, Tag};
use dicom_transfer_syntax_registry::{TransferSyntaxRegistry, entries};

use super::DicomError;
use super::lengths::{Encoding, check_declared_lengths_until, meta_group_end};
use crate::domain::{
    DicomInstance, DicomUid, PatientAttributes, SeriesAttributes, StudyAttributes, Tolerated,
};
use crate::error::ErrorKind;

/// This implementation's class UID (a UUID-derived `2.25` UID) and version name, written into
/// the file meta of files it assembles.
const IMPLEMENTATION_CLASS_UID: &str = "2.25.108027565719624272402732348336842377975";
const IMPLEMENTATION_VERSION_NAME: &str = concat!("PROGNOSTICS_", env!("CARGO_PKG_VERSION_MAJOR"));

/// The most a deflated data set may inflate to.
const MAX_INFLATED_BYTES: u64 = 1024 * 1024 * 1024;

const MEDIA_STORAGE_DIRECTORY: &str = "1.2.840.10008.1.3.10";
const STANDARD_ROOT: &str = "1.2.840.10008.";
const STANDARD_STORAGE_ROOT: &str = "1.2.840.10008.5.1.4.1.1.";

/// A DICOM status code (PS3.7 Annex C, PS3.4 Annex B): the C-STORE-RSP status and the STOW-RS
/// Failure Reason (0008,1197).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DicomStatus(pub u16);

impl DicomStatus {
    pub const SUCCESS: DicomStatus = DicomStatus(0x0000);
    /// PS3.4 Table B.2-1, a warning: stored, with data elements coerced (here: the file meta
    /// the data set was read by was inferred, not read).
    pub const COERCION_OF_DATA_ELEMENTS: DicomStatus = DicomStatus(0xB000);
    /// PS3.4 Table B.2-1, a warning: stored, with some data discarded (here: bytes after the
    /// data set).
    pub const ELEMENTS_DISCARDED: DicomStatus = DicomStatus(0xB006);
    pub const PROCESSING_FAILURE: DicomStatus = DicomStatus(0x0110);
    pub const SOP_CLASS_NOT_SUPPORTED: DicomStatus = DicomStatus(0x0122);
    /// PS3.7 C.4.x: Refused: Not Authorized.
    pub const NOT_AUTHORIZED: DicomStatus = DicomStatus(0x0124);
    pub const OUT_OF_RESOURCES: DicomStatus = DicomStatus(0xA700);
    pub const DATA_SET_DOES_NOT_MATCH_SOP_CLASS: DicomStatus = DicomStatus(0xA900);
    pub const CANNOT_UNDERSTAND: DicomStatus = DicomStatus(0xC000);
    /// PS3.18 Table 10.5.3-2: Referenced Transfer Syntax not supported.
    pub const TRANSFER_SYNTAX_NOT_SUPPORTED: DicomStatus = DicomStatus(0xC122);

    /// The status for a failure that is not about the instance's content: the one table from
    /// [`ErrorKind`] to DICOM that both DICOM edges use.
    pub fn for_kind(kind: ErrorKind) -> DicomStatus {
        match kind {
            ErrorKind::Invalid => DicomStatus::CANNOT_UNDERSTAND,
            ErrorKind::Unprocessable | ErrorKind::Conflict | ErrorKind::PreconditionFailed => {
                DicomStatus::DATA_SET_DOES_NOT_MATCH_SOP_CLASS
            }
            ErrorKind::PayloadTooLarge
            | ErrorKind::Overloaded
            | ErrorKind::Unavailable
            | ErrorKind::TimedOut => DicomStatus::OUT_OF_RESOURCES,
            ErrorKind::UnsupportedMediaType => DicomStatus::TRANSFER_SYNTAX_NOT_SUPPORTED,
            ErrorKind::Unauthenticated | ErrorKind::Forbidden => DicomStatus::NOT_AUTHORIZED,
            ErrorKind::NotFound
            | ErrorKind::Gone
            | ErrorKind::NotAcceptable
            | ErrorKind::MethodNotAllowed
            | ErrorKind::Internal => DicomStatus::PROCESSING_FAILURE,
        }
    }

    /// The warning an instance stored despite `tolerated` is answered with (C-STORE-RSP
    /// status, STOW-RS Warning Reason (0008,1196)); `None` when nothing was tolerated. Of
    /// several, the file meta's comes first: it says more about the file than a padding does.
    pub fn for_tolerated(tolerated: &[Tolerated]) -> Option<DicomStatus> {
        let warning = |t: &Tolerated| match t {
            Tolerated::BareDataSet | Tolerated::UnreadableMeta => {
                DicomStatus::COERCION_OF_DATA_ELEMENTS
            }
            Tolerated::TrailingBytes(_) => DicomStatus::ELEMENTS_DISCARDED,
        };
        tolerated.iter().map(warning).min_by_key(|s| s.0)
    }
}

/// Reads a complete Part 10 file (with or without its 128-byte preamble) and returns what the
/// service records of it. The whole data set is parsed, pixel data included, so that a
/// truncated file fails here rather than after it was acknowledged. What real devices get
/// wrong and dcmtk and pydicom read anyway is read too, and named in
/// [`DicomInstance::tolerated`]: padding after the data set, a bare data set without preamble
/// or file meta.
pub fn read_instance(bytes: &[u8]) -> Result<DicomInstance, DicomError> {
    let Opened { object, tolerated } = open_until(bytes, None)?;
    let ts_uid = object
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_owned();
    let mut instance = instance_from(&object, ts_uid)?;
    instance.tolerated = tolerated;
    Ok(instance)
}

/// Parses a complete Part 10 file, refusing DICOMDIRs and transfer syntaxes the parser cannot
/// read before the data set is touched.
pub(super) fn open(bytes: &[u8]) -> Result<DefaultDicomObject, DicomError> {
    open_until(bytes, None).map(|opened| opened.object)
}

/// A file read, and what was tolerated to read it.
struct Opened {
    object: DefaultDicomObject,
    tolerated: Vec<Tolerated>,
}

/// [`open`], stopping before `until` when given (a header read that skips the pixel data).
fn open_until(bytes: &[u8], until: Option<Tag>) -> Result<Opened, DicomError> {
    let mut tolerated = Vec::new();
    let wrapped;
    let body = match without_preamble(bytes) {
        // The file meta's declared lengths are walked before dicom-object reads it, as its
        // reader takes them on trust (found by fuzzing: an unknown VR in the meta, read as UN
        // with a 4-byte length, had it reserve 775 MB).
        Ok(body) => match meta_group_end(&body[4..])
            .map(|end| FileMetaTable::from_reader(&body[..4 + end]))?
        {
            Ok(_) => body,
            // A file meta without its group length or transfer syntax: what follows it is
            // read as a bare data set, as pydicom does.
            Err(meta_error) => {
                let after = 4 + meta_group_end(&body[4..])?;
                wrapped = bare_data_set(&body[after..])
                    .map_err(|_| DicomError::UnreadableMeta(Box::new(meta_error)))?;
                tolerated.push(Tolerated::UnreadableMeta);
                &wrapped[128..]
            }
        },
        Err(DicomError::NotDicom) => {
            wrapped = bare_data_set(bytes)?;
            tolerated.push(Tolerated::BareDataSet);
            &wrapped[128..]
        }
        Err(e) => return Err(e),
    };
    let meta =
        FileMetaTable::from_reader(body).map_err(|e| DicomError::UnreadableMeta(Box::new(e)))?;
    let ts_uid = meta
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_owned();
    let media_class = meta
        .media_storage_sop_class_uid()
        .trim_end_matches(['\0', ' ']);
    if media_class == MEDIA_STORAGE_DIRECTORY {
        return Err(DicomError::NotStorage {
            uid: media_class.to_owned(),
        });
    }
    let ts = match TransferSyntaxRegistry.get(&ts_uid) {
        Some(ts) if !ts.is_unsupported() => ts,
        _ => return Err(DicomError::UnsupportedTransferSyntax { uid: ts_uid }),
    };
    // Every declared length is checked before the parser reserves memory for it; what follows
    // the data set's last element is left out.
    let meta_end = 4 + meta_group_end(&body[4..])?;
    let end = meta_end + check_lengths(&body[meta_end..], ts, until)?;
    if end < body.len() {
        tolerated.push(Tolerated::TrailingBytes(body.len() - end));
    }
    let options = OpenFileOptions::new().read_preamble(ReadPreamble::Never);
    let options = match until {
        Some(tag) => options.read_until(tag),
        None => options,
    };
    let object = options
        .from_reader(&body[..end])
        .map_err(|e| DicomError::Unreadable(Box::new(e)))?;
    Ok(Opened { object, tolerated })
}

/// A bare data set (no preamble, no `DICM`, no file meta, as some devices write files) wrapped
/// into a Part 10 file, its encoding told by its first element as dcmtk and pydicom do: a VR
/// after the tag means explicit VR little endian, else implicit. `NotDicom` when it does not
/// start like a data set (group 0008) or lacks its SOP Class and Instance UIDs.
fn bare_data_set(bytes: &[u8]) -> Result<Vec<u8>, DicomError> {
    if bytes.len() < 8 || bytes[..2] != [0x08, 0x00] {
        return Err(DicomError::NotDicom);
    }
    let explicit = bytes[4..6].iter().all(u8::is_ascii_uppercase)
        && dicom_core::VR::from_binary([bytes[4], bytes[5]]).is_some();
    let (encoding, ts) = if explicit {
        (
            Encoding::EXPLICIT_LITTLE,
            entries::EXPLICIT_VR_LITTLE_ENDIAN,
        )
    } else {
        (
            Encoding::IMPLICIT_LITTLE,
            entries::IMPLICIT_VR_LITTLE_ENDIAN,
        )
    };
    let ts_uid = ts.uid();
    // The whole data set is checked, as the read below takes all of it (found by fuzzing:
    // checked only up to the pixel data, an element after it with an unknown VR was read as
    // a 4 GiB UN value).
    let end =
        check_declared_lengths_until(bytes, encoding, None).map_err(|_| DicomError::NotDicom)?;
    let ts = ts.erased();
    let header = dicom_object::InMemDicomObject::read_dataset_with_ts(&bytes[..end], &ts);
    // Only the header is needed here: the read stops at the first element it cannot take.
    let header = match header {
        Ok(header) => header,
        Err(_) => return Err(DicomError::NotDicom),
    };
    let text = |tag| {
        header
            .get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|v| v.trim_end_matches(['\0', ' ']).to_owned())
            .filter(|v| !v.is_empty())
    };
    let (Some(class), Some(instance)) = (text(tags::SOP_CLASS_UID), text(tags::SOP_INSTANCE_UID))
    else {
        return Err(DicomError::NotDicom);
    };
    part10_file(bytes, &class, &instance, ts_uid)
}

/// Wraps a data set received over DIMSE, encoded in `transfer_syntax`, into a Part 10 file:
/// preamble, `DICM`, file meta, then the data set's bytes exactly as they arrived.
pub fn part10_file(
    data_set: &[u8],
    sop_class_uid: &str,
    sop_instance_uid: &str,
    transfer_syntax: &str,
) -> Result<Vec<u8>, DicomError> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class_uid)
        .media_storage_sop_instance_uid(sop_instance_uid)
        .transfer_syntax(transfer_syntax)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
        .build()
        .map_err(|e| DicomError::WriteMeta(Box::new(e)))?;
    let mut out = Vec::with_capacity(data_set.len() + 512);
    out.extend_from_slice(&[0u8; 128]);
    out.extend_from_slice(b"DICM");
    meta.write(&mut out)
        .map_err(|e| DicomError::WriteMeta(Box::new(e)))?;
    out.extend_from_slice(data_set);
    Ok(out)
}

/// Checks the declared lengths of a data set encoded in `ts` (up to `until`); returns where it
/// ends, before any trailing padding.
fn check_lengths(
    data_set: &[u8],
    ts: &dicom_encoding::TransferSyntax,
    until: Option<Tag>,
) -> Result<usize, DicomError> {
    let Some(encoding) = Encoding::of_transfer_syntax(ts) else {
        // Deflated: checked inflated, nothing trimmed.
        let inflated = inflate(data_set)?;
        check_declared_lengths_until(&inflated, Encoding::EXPLICIT_LITTLE, until)?;
        return Ok(data_set.len());
    };
    check_declared_lengths_until(data_set, encoding, until)
}

/// A deflated data set (PS3.5 A.5) inflated, refused once it outgrows [`MAX_INFLATED_BYTES`].
fn inflate(deflated: &[u8]) -> Result<Vec<u8>, DicomError> {
    use std::io::Read;
    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(deflated)
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut inflated)
        .map_err(|_| DicomError::MalformedElement {
            what: "the deflated data set does not inflate",
            offset: 0,
        })?;
    if inflated.len() as u64 > MAX_INFLATED_BYTES {
        return Err(DicomError::ImageTooLarge {
            bytes: inflated.len() as u64,
            limit: MAX_INFLATED_BYTES,
        });
    }
    Ok(inflated)
}

fn without_preamble(bytes: &[u8]) -> Result<&[u8], DicomError> {
    if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        Ok(&bytes[128..])
    } else if bytes.starts_with(b"DICM") {
        Ok(bytes)
    } else {
        Err(DicomError::NotDicom)
    }
}

fn instance_from(object: &DefaultDicomObject, ts_uid: String) -> Result<DicomInstance, DicomError> {
    let sop_class_uid = uid(object, tags::SOP_CLASS_UID, "SOPClassUID")?;
    let sop_instance_uid = uid(object, tags::SOP_INSTANCE_UID, "SOPInstanceUID")?;
    let class = sop_class_uid.as_str();
    if class == MEDIA_STORAGE_DIRECTORY
        || (class.starts_with(STANDARD_ROOT) && !class.starts_with(STANDARD_STORAGE_ROOT))
    {
        return Err(DicomError::NotStorage {
            uid: class.to_owned(),
        });
    }
    // A file meta that names another SOP instance than the data set is a known writer bug;
    // the data set's own UIDs are the instance's identity.
    let has_pixel_data = [
        tags::PIXEL_DATA,
        tags::FLOAT_PIXEL_DATA,
        tags::DOUBLE_FLOAT_PIXEL_DATA,
    ]
    .into_iter()
    .any(|t| object.get(t).is_some());
    let rows = int(object, tags::ROWS);
    // An image (it has Rows) must carry its pixels; other objects (SR, RT plans, waveforms)
    // legitimately have none.
    if rows.is_some() && !has_pixel_data {
        return Err(DicomError::MissingPixelData {
            sop_class_uid,
            sop_instance_uid,
        });
    }
    Ok(DicomInstance {
        study_uid: uid(object, tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
        series_uid: uid(object, tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
        sop_class_uid,
        sop_instance_uid,
        transfer_syntax_uid: ts_uid,
        patient: PatientAttributes {
            id: text(object, tags::PATIENT_ID),
            issuer: text(object, tags::ISSUER_OF_PATIENT_ID),
            name: text(object, tags::PATIENT_NAME),
            birth_date: date(object, tags::PATIENT_BIRTH_DATE),
            sex: text(object, tags::PATIENT_SEX),
        },
        study: StudyAttributes {
            date: date(object, tags::STUDY_DATE),
            time: text(object, tags::STUDY_TIME),
            accession_number: text(object, tags::ACCESSION_NUMBER),
            description: text(object, tags::STUDY_DESCRIPTION),
            study_id: text(object, tags::STUDY_ID),
            referring_physician: text(object, tags::REFERRING_PHYSICIAN_NAME),
        },
        series: SeriesAttributes {
            modality: text(object, tags::MODALITY),
            number: int(object, tags::SERIES_NUMBER),
            description: text(object, tags::SERIES_DESCRIPTION),
            body_part: text(object, tags::BODY_PART_EXAMINED),
        },
        instance_number: int(object, tags::INSTANCE_NUMBER),
        number_of_frames: has_pixel_data.then(|| int(object, tags::NUMBER_OF_FRAMES).unwrap_or(1)),
        rows,
        columns: int(object, tags::COLUMNS),
        has_pixel_data,
        tolerated: Vec::new(),
    })
}

/// How an instance was acquired, as its header says: where (institution), manufacturer, model,
/// software version, slice thickness (mm) and peak kilovoltage, each when present (for monitoring the mix of
/// scanners and protocols a model meets).
pub fn acquisition(bytes: &[u8]) -> Result<Vec<(&'static str, String)>, DicomError> {
    // The header only: an assessment reads it, and must not decode pixels it does not use.
    let object = open_until(bytes, Some(tags::PIXEL_DATA))?.object;
    let fields = [
        ("institution", tags::INSTITUTION_NAME),
        ("manufacturer", tags::MANUFACTURER),
        ("model", tags::MANUFACTURER_MODEL_NAME),
        ("software", tags::SOFTWARE_VERSIONS),
        ("slice_thickness", tags::SLICE_THICKNESS),
        ("kvp", tags::KVP),
    ];
    Ok(fields
        .into_iter()
        .filter_map(|(name, tag)| Some((name, text(&object, tag)?)))
        .collect())
}

fn text(object: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let value = object.get(tag)?.to_str().ok()?;
    let trimmed = value.trim_matches([' ', '\0']);
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// A DA element as `YYYYMMDD` (legacy `YYYY.MM.DD` rewritten); kept as written when it is
/// neither, so that nothing the file said is lost.
fn date(object: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let written = text(object, tag)?;
    Some(crate::domain::dicom_date(&written).unwrap_or(written))
}

fn int(object: &DefaultDicomObject, tag: Tag) -> Option<i64> {
    object.get(tag)?.to_int::<i64>().ok()
}

fn uid(
    object: &DefaultDicomObject,
    tag: Tag,
    attribute: &'static str,
) -> Result<DicomUid, DicomError> {
    let value = text(object, tag).ok_or(DicomError::MissingAttribute { attribute })?;
    DicomUid::parse(&value).map_err(|_| DicomError::InvalidUid { attribute })
}
