//! The DICOM JSON model (PS3.18 Annex F) for the answers the DICOMweb routes give: the STOW-RS
//! store response and QIDO-RS study matches.

use serde_json::{Map, Value, json};

use crate::domain::DicomUid;
use crate::pipeline::DicomStatus;
use crate::store::StudySummary;

const FAILED_SOP_SEQUENCE: &str = "00081198";
const REFERENCED_SOP_SEQUENCE: &str = "00081199";
const REFERENCED_SOP_CLASS_UID: &str = "00081150";
const REFERENCED_SOP_INSTANCE_UID: &str = "00081155";
const FAILURE_REASON: &str = "00081197";
const WARNING_REASON: &str = "00081196";

/// One element: `{"vr": …, "Value": […]}`, or `{"vr": …}` when there is no value.
pub fn element(vr: &str, values: Vec<Value>) -> Value {
    if values.is_empty() {
        json!({ "vr": vr })
    } else {
        json!({ "vr": vr, "Value": values })
    }
}

fn text(vr: &str, value: Option<&str>) -> Value {
    element(vr, value.map(|v| vec![Value::from(v)]).unwrap_or_default())
}

fn person_name(value: Option<&str>) -> Value {
    element(
        "PN",
        value
            .map(|v| vec![json!({ "Alphabetic": v })])
            .unwrap_or_default(),
    )
}

/// One instance of a STOW-RS answer.
#[derive(Debug)]
pub enum StoreResult {
    Stored {
        sop_class_uid: DicomUid,
        sop_instance_uid: DicomUid,
        /// Stored despite a fault in the file: the Warning Reason (0008,1196).
        warning: Option<DicomStatus>,
    },
    Failed {
        sop_class_uid: Option<DicomUid>,
        sop_instance_uid: Option<DicomUid>,
        reason: DicomStatus,
    },
}

/// The Store Instances Response Module (PS3.18 §10.5.3): Referenced SOP Sequence for what was
/// stored, Failed SOP Sequence for what was not.
pub fn store_response(results: &[StoreResult]) -> Value {
    let mut referenced = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            StoreResult::Stored {
                sop_class_uid,
                sop_instance_uid,
                warning,
            } => {
                let mut item = Map::new();
                item.insert(
                    REFERENCED_SOP_CLASS_UID.to_owned(),
                    text("UI", Some(sop_class_uid.as_str())),
                );
                item.insert(
                    REFERENCED_SOP_INSTANCE_UID.to_owned(),
                    text("UI", Some(sop_instance_uid.as_str())),
                );
                if let Some(warning) = warning {
                    item.insert(
                        WARNING_REASON.to_owned(),
                        element("US", vec![Value::from(warning.0)]),
                    );
                }
                referenced.push(Value::Object(item));
            }
            StoreResult::Failed {
                sop_class_uid,
                sop_instance_uid,
                reason,
            } => {
                let mut item = Map::new();
                item.insert(
                    REFERENCED_SOP_CLASS_UID.to_owned(),
                    text("UI", sop_class_uid.as_ref().map(DicomUid::as_str)),
                );
                item.insert(
                    REFERENCED_SOP_INSTANCE_UID.to_owned(),
                    text("UI", sop_instance_uid.as_ref().map(DicomUid::as_str)),
                );
                item.insert(
                    FAILURE_REASON.to_owned(),
                    element("US", vec![Value::from(reason.0)]),
                );
                failed.push(Value::Object(item));
            }
        }
    }
    let mut out = Map::new();
    if !failed.is_empty() {
        out.insert(FAILED_SOP_SEQUENCE.to_owned(), element("SQ", failed));
    }
    if !referenced.is_empty() {
        out.insert(
            REFERENCED_SOP_SEQUENCE.to_owned(),
            element("SQ", referenced),
        );
    }
    Value::Object(out)
}

/// A study-level QIDO-RS match (PS3.18 Table 10.6.3-3's study attributes).
pub fn study_match(s: &StudySummary) -> Value {
    let mut out = Map::new();
    let mut put = |tag: &str, v: Value| {
        out.insert(tag.to_owned(), v);
    };
    // DA as DICOM JSON requires, even from a file that wrote the legacy `YYYY.MM.DD`; a value
    // that is no date at all is left out rather than passed on.
    let da = |d: Option<&str>| d.and_then(crate::domain::dicom_date);
    put(
        "00080020",
        text("DA", da(s.study.date.as_deref()).as_deref()),
    );
    put("00080030", text("TM", s.study.time.as_deref()));
    put("00080050", text("SH", s.study.accession_number.as_deref()));
    put(
        "00080061",
        element(
            "CS",
            s.modalities
                .iter()
                .map(|m| Value::from(m.as_str()))
                .collect(),
        ),
    );
    put(
        "00080090",
        person_name(s.study.referring_physician.as_deref()),
    );
    put("00081030", text("LO", s.study.description.as_deref()));
    put("00100010", person_name(s.patient.name.as_deref()));
    put("00100020", text("LO", s.patient.id.as_deref()));
    put(
        "00100030",
        text("DA", da(s.patient.birth_date.as_deref()).as_deref()),
    );
    put("00100040", text("CS", s.patient.sex.as_deref()));
    put("0020000D", text("UI", Some(s.study_uid.as_str())));
    put("00200010", text("SH", s.study.study_id.as_deref()));
    put("00201206", element("IS", vec![Value::from(s.series_count)]));
    put(
        "00201208",
        element("IS", vec![Value::from(s.instance_count)]),
    );
    Value::Object(out)
}
