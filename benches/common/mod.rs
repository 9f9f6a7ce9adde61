//! Helpers the benchmarks share: re-identifying one real DICOM file into many instances, and
//! the HTTP load driver (`load`), and the seeded database (`seed`).

pub mod load;
pub mod seed;

/// `file` with every occurrence of `uid` replaced by a same-length UID ending in `suffix`.
pub fn reidentify(file: &[u8], uid: &str, suffix: &str) -> Vec<u8> {
    let mut new = uid[..uid.len() - suffix.len()].to_owned();
    new.push_str(suffix);
    let (from, to) = (uid.as_bytes(), new.as_bytes());
    let mut out = file.to_vec();
    let mut i = 0;
    while let Some(pos) = out[i..].windows(from.len()).position(|w| w == from) {
        out[i + pos..i + pos + from.len()].copy_from_slice(to);
        i += pos + from.len();
    }
    out
}

pub fn uid_of(file: &[u8], tag: [u8; 4]) -> String {
    // Explicit VR little endian: tag, "UI", 2-byte length, value.
    let pos = file
        .windows(6)
        .position(|w| w[..4] == tag && &w[4..] == b"UI")
        .unwrap();
    let len = u16::from_le_bytes([file[pos + 6], file[pos + 7]]) as usize;
    String::from_utf8_lossy(&file[pos + 8..pos + 8 + len])
        .trim_end_matches('\0')
        .to_owned()
}
