//! Faults real devices write that dcmtk and pydicom read past: padding after the data set, a
//! file without its preamble, a bare data set without file meta, odd-length values. Each is
//! read, and named in `tolerated`; a file that is truly cut short is still refused.

use std::process::Command;

use prognostics::dicom::{acquisition, read_instance};

use crate::decoding::corpus;

const CT_INSTANCE: &str = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322";

/// Where CT_small.dcm's data set starts: after the preamble, `DICM` and the file meta group.
fn data_set_start(file: &[u8]) -> usize {
    let group_length = u32::from_le_bytes(file[140..144].try_into().unwrap()) as usize;
    144 + group_length
}

/// Whether dcmtk's dcmdump reads `bytes` (`None` when dcmtk is not installed).
fn dcmtk_reads(bytes: &[u8]) -> Option<bool> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.dcm");
    std::fs::write(&path, bytes).unwrap();
    let output = Command::new("dcmdump")
        .args(["+f", "-q", "+E"])
        .arg(&path)
        .output()
        .ok()?;
    Some(output.status.success())
}

/// Reads `bytes`, expecting `note` among what was tolerated; dcmtk must read them too.
fn read_with(bytes: &[u8], note: &str) {
    read_tolerating(bytes, note);
    assert_ne!(dcmtk_reads(bytes), Some(false), "dcmtk reads it too");
}

fn read_tolerating(bytes: &[u8], note: &str) {
    let instance = read_instance(bytes).unwrap_or_else(|e| panic!("{note}: {e}"));
    assert_eq!(instance.sop_instance_uid.as_str(), CT_INSTANCE);
    assert!(
        instance
            .tolerated
            .iter()
            .any(|t| t.to_string().contains(note)),
        "{:?}",
        instance.tolerated
    );
}

#[test]
fn padding_after_the_data_set_is_read_and_named() {
    let Some(ct) = corpus("pydicom", "CT_small.dcm") else {
        return;
    };
    assert!(read_instance(&ct).unwrap().tolerated.is_empty());
    let mut padded = ct.clone();
    padded.extend_from_slice(&[0; 64]);
    read_with(&padded, "64 bytes after the data set ignored");
    let mut tail = ct.clone();
    tail.extend_from_slice(&[1, 2, 3]);
    // dcmtk refuses a tail too short to be an element; pydicom reads past it, and so does this.
    read_tolerating(&tail, "3 bytes after the data set ignored");
}

#[test]
fn a_bare_data_set_without_preamble_or_file_meta_is_read() {
    let Some(ct) = corpus("pydicom", "CT_small.dcm") else {
        return;
    };
    let bare = &ct[data_set_start(&ct)..];
    read_with(bare, "read as a bare data set");
    // Without the preamble only (DICM first), nothing needs tolerating.
    assert!(read_instance(&ct[128..]).unwrap().tolerated.is_empty());
    // pydicom's own files written that way.
    for name in ["ExplVR_LitEndNoMeta.dcm", "rtstruct.dcm"] {
        let Some(file) = corpus("pydicom", name) else {
            return;
        };
        let instance = read_instance(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            instance.tolerated[0].to_string().contains("bare data set"),
            "{name}: {:?}",
            instance.tolerated
        );
    }
    // Text that happens to start like nothing DICOM is still not an instance.
    assert!(read_instance(b"not a DICOM file at all").is_err());
}

#[test]
fn an_odd_length_value_is_read_as_it_is() {
    let Some(ct) = corpus("pydicom", "CT_small.dcm") else {
        return;
    };
    // Manufacturer (0008,0070) LO "GE MEDICAL SYSTEMS" (18) rewritten as 17 bytes.
    let at = ct
        .windows(6)
        .position(|w| w == [0x08, 0x00, 0x70, 0x00, b'L', b'O'])
        .unwrap();
    let mut odd = ct[..at + 6].to_vec();
    odd.extend_from_slice(&17u16.to_le_bytes());
    odd.extend_from_slice(b"GE MEDICAL SYSTEM");
    odd.extend_from_slice(&ct[at + 8 + 18..]);
    assert_eq!(
        read_instance(&odd).unwrap().sop_instance_uid.as_str(),
        CT_INSTANCE
    );
    let read = acquisition(&odd).unwrap();
    assert!(
        read.contains(&("manufacturer", "GE MEDICAL SYSTEM".to_owned())),
        "{read:?}"
    );
    assert_ne!(dcmtk_reads(&odd), Some(false));
}

#[test]
fn a_file_cut_short_is_still_refused() {
    let Some(ct) = corpus("pydicom", "CT_small.dcm") else {
        return;
    };
    let error = read_instance(&ct[..ct.len() - 200]).unwrap_err();
    assert!(
        error.to_string().contains("truncated or corrupt"),
        "{error}"
    );
}
