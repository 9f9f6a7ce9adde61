//! What decoding would take, judged before any codec runs. The header's Rows, Columns, Samples
//! per Pixel, Bits Allocated and Number of Frames give the decoded size, capped at
//! [`MAX_DECODED_BYTES`]; the codestream of each compressed frame (JPEG, JPEG-LS and JPEG 2000
//! headers) must not declare more pixels than the header, since codecs allocate by what the
//! codestream declares: a 1 KB JPEG can declare 30000 × 30000 pixels.

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

use super::DicomError;

/// The most one instance may decode to (native samples, all frames): 2 GiB.
pub const MAX_DECODED_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Refuses an image whose decoded size is over the cap, or whose compressed frames declare
/// larger dimensions than its header.
pub fn check_decoded_size(object: &DefaultDicomObject) -> Result<(), DicomError> {
    let int = |tag| {
        object
            .get(tag)
            .and_then(|e| e.to_int::<u64>().ok())
            .unwrap_or(0)
    };
    let (rows, columns) = (int(tags::ROWS), int(tags::COLUMNS));
    let samples = int(tags::SAMPLES_PER_PIXEL).max(1);
    let bytes_per_sample = int(tags::BITS_ALLOCATED).div_ceil(8).max(1);
    let frames = int(tags::NUMBER_OF_FRAMES).max(1);
    let bytes = rows
        .saturating_mul(columns)
        .saturating_mul(samples)
        .saturating_mul(bytes_per_sample)
        .saturating_mul(frames);
    if bytes > MAX_DECODED_BYTES {
        return Err(DicomError::ImageTooLarge {
            bytes,
            limit: MAX_DECODED_BYTES,
        });
    }
    let Some(fragments) = object
        .get(tags::PIXEL_DATA)
        .and_then(|e| e.value().fragments())
    else {
        return Ok(());
    };
    for fragment in fragments {
        if let Some((width, height)) = codestream_dimensions(fragment)
            && (u64::from(width) > columns || u64::from(height) > rows)
        {
            return Err(DicomError::Codec {
                reason: format!(
                    "a frame's codestream declares {width} × {height} pixels, more than the \
                     header's {columns} × {rows}"
                ),
            });
        }
    }
    Ok(())
}

/// Width and height a fragment's codestream declares, when it starts one: a JPEG or JPEG-LS
/// frame header (SOFn, SOF55) or a JPEG 2000 image size (SIZ). Other fragments (continuations
/// of a frame, RLE) give `None`.
fn codestream_dimensions(fragment: &[u8]) -> Option<(u32, u32)> {
    match fragment {
        [0xFF, 0xD8, ..] => jpeg_frame_header(fragment),
        [0xFF, 0x4F, 0xFF, 0x51, ..] => jpeg2000_size(fragment),
        _ => None,
    }
}

/// Walks JPEG marker segments from SOI to the first frame header.
fn jpeg_frame_header(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut pos = 2;
    loop {
        // Fill bytes (0xFF) may precede a marker.
        while bytes.get(pos) == Some(&0xFF) && bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let (&0xFF, &marker) = (bytes.get(pos)?, bytes.get(pos + 1)?) else {
            return None;
        };
        let length = usize::from(u16::from_be_bytes([
            *bytes.get(pos + 2)?,
            *bytes.get(pos + 3)?,
        ]));
        let is_frame_header = matches!(marker, 0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC))
            || marker == 0xF7;
        if is_frame_header {
            let height = u16::from_be_bytes([*bytes.get(pos + 5)?, *bytes.get(pos + 6)?]);
            let width = u16::from_be_bytes([*bytes.get(pos + 7)?, *bytes.get(pos + 8)?]);
            return Some((u32::from(width), u32::from(height)));
        }
        if marker == 0xDA || length < 2 {
            // Scan data before any frame header: not a codestream to judge here.
            return None;
        }
        pos += 2 + length;
    }
}

/// Reads the image size from a JPEG 2000 codestream's SIZ segment (ITU-T T.800 A.5.1).
fn jpeg2000_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let u32_at = |at: usize| {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    // SOC (2), SIZ marker (2), Lsiz (2), Rsiz (2), then Xsiz, Ysiz, XOsiz, YOsiz.
    let (x, y, x0, y0) = (u32_at(8)?, u32_at(12)?, u32_at(16)?, u32_at(20)?);
    Some((x.saturating_sub(x0), y.saturating_sub(y0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_declaring(width: u16, height: u16) -> Vec<u8> {
        let mut jpeg = vec![0xFF, 0xD8];
        // An APP0 segment first, then a baseline frame header.
        jpeg.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00]);
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08]);
        jpeg.extend_from_slice(&height.to_be_bytes());
        jpeg.extend_from_slice(&width.to_be_bytes());
        jpeg.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
        jpeg
    }

    #[test]
    fn jpeg_and_jpeg2000_dimensions_are_read_from_their_headers() {
        assert_eq!(
            codestream_dimensions(&jpeg_declaring(30000, 20000)),
            Some((30000, 20000))
        );
        let mut j2k = vec![0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0x00, 0x00];
        for v in [512u32, 256, 0, 0] {
            j2k.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(codestream_dimensions(&j2k), Some((512, 256)));
        assert_eq!(codestream_dimensions(&[0x00, 0x01, 0x02]), None);
        assert_eq!(codestream_dimensions(&[0xFF, 0xD8, 0xFF]), None);
    }
}
