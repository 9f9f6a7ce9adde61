//! Outside formats into the domain: DICOM Part 10 files into [`DicomInstance`] records, and
//! DIMSE data sets into Part 10 files. Imports `domain` and `error`; owns dicom-object. Never
//! calls the store.
//!
//! [`DicomInstance`]: crate::domain::DicomInstance

mod decoded_size;
mod jpeg;
mod lengths;
mod part10;
mod pixels;
mod samples;

pub use lengths::{Encoding, check_declared_lengths};
pub use part10::{DicomStatus, acquisition, part10_file, read_instance};
pub use pixels::{DecodedImage, decode_image, decode_modality_values};

use crate::domain::DicomUid;
use crate::error::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum DicomError {
    #[error("not a DICOM Part 10 file (no DICM prefix)")]
    NotDicom,
    #[error("the DICOM file meta information could not be read")]
    UnreadableMeta(#[source] Box<dicom_object::meta::Error>),
    #[error("the DICOM file could not be read (truncated or corrupt)")]
    Unreadable(#[source] Box<dicom_object::ReadError>),
    #[error(
        "the DICOM file is truncated or corrupt: element {tag} declares {declared} bytes where only {remaining} remain"
    )]
    DeclaredLength {
        tag: String,
        declared: u64,
        remaining: u64,
    },
    #[error("the DICOM file is corrupt: at byte {offset} of its data set, {what}")]
    MalformedElement { what: &'static str, offset: u64 },
    #[error("the decoded image would take {bytes} bytes, over the limit of {limit}")]
    ImageTooLarge { bytes: u64, limit: u64 },
    #[error("transfer syntax {uid} is not supported")]
    UnsupportedTransferSyntax { uid: String },
    #[error("required attribute {attribute} is missing or empty")]
    MissingAttribute { attribute: &'static str },
    #[error("attribute {attribute} is not a valid DICOM UID")]
    InvalidUid { attribute: &'static str },
    #[error("image {sop_instance_uid} has no pixel data")]
    MissingPixelData {
        sop_class_uid: DicomUid,
        sop_instance_uid: DicomUid,
    },
    #[error("SOP class {uid} is not a storage SOP class")]
    NotStorage { uid: String },
    #[error("the pixel data could not be decoded")]
    Undecodable(#[source] Box<dicom_pixeldata::Error>),
    #[error("the pixel data could not be decoded: {reason}")]
    Codec { reason: String },
    #[error("the pixel data holds no frames")]
    NoFrames,
    #[error("photometric interpretation {value} is not supported")]
    UnsupportedPhotometric { value: String },
    #[error("could not write the DICOM file meta information")]
    WriteMeta(#[source] Box<dicom_object::meta::Error>),
}

impl DicomError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DicomError::NotDicom
            | DicomError::UnreadableMeta(_)
            | DicomError::Unreadable(_)
            | DicomError::DeclaredLength { .. }
            | DicomError::MalformedElement { .. }
            | DicomError::MissingAttribute { .. }
            | DicomError::MissingPixelData { .. }
            | DicomError::InvalidUid { .. } => ErrorKind::Invalid,
            DicomError::UnsupportedTransferSyntax { .. }
            | DicomError::NotStorage { .. }
            | DicomError::Undecodable(_)
            | DicomError::Codec { .. }
            | DicomError::NoFrames
            | DicomError::UnsupportedPhotometric { .. } => ErrorKind::Unprocessable,
            DicomError::ImageTooLarge { .. } => ErrorKind::PayloadTooLarge,
            DicomError::WriteMeta(_) => ErrorKind::Internal,
        }
    }

    /// The instance's SOP Class and SOP Instance UIDs, when they were read before it failed.
    pub fn identified(&self) -> Option<(&DicomUid, &DicomUid)> {
        match self {
            DicomError::MissingPixelData {
                sop_class_uid,
                sop_instance_uid,
            } => Some((sop_class_uid, sop_instance_uid)),
            _ => None,
        }
    }

    /// Not a DICOM instance at all (no `DICM` prefix), or not a stored kind of object (a
    /// DICOMDIR, a non-storage SOP class): an import skips such files.
    pub fn is_not_an_instance(&self) -> bool {
        matches!(self, DicomError::NotDicom | DicomError::NotStorage { .. })
    }

    /// The DICOM status a storage SCP or STOW-RS origin server reports for this failure.
    pub fn dicom_status(&self) -> DicomStatus {
        match self {
            DicomError::NotDicom
            | DicomError::UnreadableMeta(_)
            | DicomError::Unreadable(_)
            | DicomError::DeclaredLength { .. }
            | DicomError::MalformedElement { .. } => DicomStatus::CANNOT_UNDERSTAND,
            DicomError::ImageTooLarge { .. } => DicomStatus::OUT_OF_RESOURCES,
            DicomError::MissingAttribute { .. }
            | DicomError::MissingPixelData { .. }
            | DicomError::InvalidUid { .. } => DicomStatus::DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
            DicomError::UnsupportedTransferSyntax { .. } => {
                DicomStatus::TRANSFER_SYNTAX_NOT_SUPPORTED
            }
            DicomError::NotStorage { .. } => DicomStatus::SOP_CLASS_NOT_SUPPORTED,
            DicomError::Undecodable(_)
            | DicomError::Codec { .. }
            | DicomError::NoFrames
            | DicomError::UnsupportedPhotometric { .. } => DicomStatus::CANNOT_UNDERSTAND,
            DicomError::WriteMeta(_) => DicomStatus::PROCESSING_FAILURE,
        }
    }
}
