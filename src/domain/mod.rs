//! The service's vocabulary: identifiers and value types parsed at the boundary, shared by every
//! layer. No I/O and no framework types live here; imports nothing from the crate but `error`.

pub mod audit;
mod ids;
mod imaging;
mod instant;
mod time;

pub use audit::{AuditAction, AuditAgent, AuditOutcome, AuditRecord};
pub use ids::{IdError, ResourceId, ResourceType, VersionId};
pub use imaging::{
    ContentHash, DicomInstance, DicomUid, ModelVersion, PatientAttributes, PixelStatus,
    SeriesAttributes, StoreOutcome, StudyAttributes, Tolerated, UidError, dicom_date,
};
pub use instant::Instant;
pub use time::{DAYS_PER_YEAR, DurationError, Horizon, TimeUnit};
