//! Stored sample values for the pixel data dicom-pixeldata 0.10 cannot decode, read here
//! instead:
//! - JPEG it refuses (12-bit extended, arithmetic coding), through libjpeg-turbo;
//! - RLE Lossless, every sample size (dicom-pixeldata's RLE decoder trusts segment offsets);
//! - 32-bit samples (RT Dose grids, 32-bit secondary captures), native;
//! - 1-bit samples (binary segmentations), native.
//!
//! The result carries each frame's stored values (sign-extended, colour interleaved) and the
//! modality rescale; `pixels` normalises them exactly as it does dicom-pixeldata's output.

use std::borrow::Cow;

use dicom_core::VR;
use dicom_core::value::PrimitiveValue;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::PhotometricInterpretation;
use rayon::prelude::*;

use super::DicomError;
use super::jpeg::{Decompressor, JpegError};

/// A data set's element value (pixel data here).
type Value = dicom_core::value::Value<InMemDicomObject>;

const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
/// JPEG baseline, extended, lossless (process 14 and its first-order predictor).
const JPEG_FAMILY: [&str; 4] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
];
/// The largest RLE header segment count PS3.5 G.5 allows.
const RLE_MAX_SEGMENTS: usize = 15;

/// An image's stored sample values, frame by frame.
#[derive(Debug)]
pub(super) struct StoredSamples {
    pub rows: u32,
    pub columns: u32,
    pub photometric: PhotometricInterpretation,
    pub bits_stored: u16,
    /// `rows × columns × samples per pixel` values per frame, colour interleaved.
    pub frames: Vec<Vec<f32>>,
    /// Modality LUT as (slope, intercept).
    pub rescale: (f32, f32),
}

/// Whether [`read_stored_samples`] knows how to read this object's pixel data.
pub(super) fn can_read(object: &DefaultDicomObject) -> bool {
    let syntax = transfer_syntax(object);
    let bits = u16_attribute(object, tags::BITS_ALLOCATED).unwrap_or(0);
    JPEG_FAMILY.contains(&syntax.as_str())
        || syntax == RLE_LOSSLESS
        || (bits == 32 && is_native(&syntax))
        || (bits == 1 && is_native(&syntax))
}

/// Whether this object's pixel data is read here rather than by dicom-pixeldata at all: RLE
/// Lossless, whose dicom-pixeldata 0.10 decoder indexes past a segment that runs beyond its
/// fragment (a panic, found by fuzzing), where [`rle_frame`] checks every offset and run.
pub(super) fn reads_first(object: &DefaultDicomObject) -> bool {
    transfer_syntax(object) == RLE_LOSSLESS
}

/// Reads the stored values of every frame (see the module doc for what it covers).
pub(super) fn read_stored_samples(
    object: &DefaultDicomObject,
) -> Result<StoredSamples, DicomError> {
    let layout = Layout::read(object)?;
    let syntax = transfer_syntax(object);
    let pixel_data = object
        .element(tags::PIXEL_DATA)
        .map_err(|_| fail("no pixel data"))?
        .value();
    let raw_frames: Vec<Vec<u32>> = if JPEG_FAMILY.contains(&syntax.as_str()) {
        jpeg_frames(pixel_data, &layout)?
    } else if syntax == RLE_LOSSLESS {
        let fragments = frame_fragments(pixel_data, layout.frames, |_| false)?;
        fragments
            .par_iter()
            .map(|data| rle_frame(data, &layout))
            .collect::<Result<_, _>>()?
    } else {
        native_frames(pixel_data, &layout, syntax == EXPLICIT_VR_BIG_ENDIAN)?
    };
    let frames = raw_frames
        .into_iter()
        .map(|frame| frame.into_iter().map(|v| layout.value(v)).collect())
        .collect();
    Ok(StoredSamples {
        rows: layout.rows,
        columns: layout.columns,
        photometric: layout.photometric_after_decoding(&syntax),
        bits_stored: layout.bits_stored,
        frames,
        rescale: rescale(object),
    })
}

fn fail(reason: impl Into<String>) -> DicomError {
    DicomError::Codec {
        reason: reason.into(),
    }
}

fn transfer_syntax(object: &DefaultDicomObject) -> String {
    object
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .trim()
        .to_owned()
}

fn is_native(syntax: &str) -> bool {
    matches!(
        syntax,
        "1.2.840.10008.1.2"
            | "1.2.840.10008.1.2.1"
            | EXPLICIT_VR_BIG_ENDIAN
            | "1.2.840.10008.1.2.1.99"
    )
}

fn u16_attribute(object: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<u16> {
    object.get(tag).and_then(|e| e.to_int::<u16>().ok())
}

/// The image pixel module attributes that say how samples are laid out.
#[derive(Debug)]
struct Layout {
    rows: u32,
    columns: u32,
    frames: usize,
    samples_per_pixel: usize,
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
    planar: bool,
    photometric: PhotometricInterpretation,
}

impl Layout {
    fn read(object: &DefaultDicomObject) -> Result<Self, DicomError> {
        let required = |tag, attribute| {
            u16_attribute(object, tag).ok_or(DicomError::MissingAttribute { attribute })
        };
        let rows = required(tags::ROWS, "Rows")?;
        let columns = required(tags::COLUMNS, "Columns")?;
        let bits_allocated = required(tags::BITS_ALLOCATED, "BitsAllocated")?;
        let samples_per_pixel = u16_attribute(object, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
        let frames = match object.get(tags::NUMBER_OF_FRAMES) {
            None => 1,
            Some(e) => e
                .to_int::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| fail("Number of Frames is not a positive integer"))?,
        };
        let photometric = object
            .get(tags::PHOTOMETRIC_INTERPRETATION)
            .and_then(|e| e.to_str().ok())
            .map(|v| PhotometricInterpretation::from(v.trim()))
            .ok_or(DicomError::MissingAttribute {
                attribute: "PhotometricInterpretation",
            })?;
        if rows == 0 || columns == 0 || !matches!(samples_per_pixel, 1 | 3) {
            return Err(fail(format!(
                "{rows} × {columns} pixels with {samples_per_pixel} samples per pixel"
            )));
        }
        Ok(Self {
            rows: rows.into(),
            columns: columns.into(),
            frames: frames as usize,
            samples_per_pixel: samples_per_pixel.into(),
            bits_allocated,
            bits_stored: u16_attribute(object, tags::BITS_STORED)
                .unwrap_or(bits_allocated)
                .clamp(1, bits_allocated.max(1)),
            signed: u16_attribute(object, tags::PIXEL_REPRESENTATION) == Some(1),
            planar: u16_attribute(object, tags::PLANAR_CONFIGURATION) == Some(1),
            photometric,
        })
    }

    fn pixels(&self) -> usize {
        self.rows as usize * self.columns as usize
    }

    fn samples(&self) -> usize {
        self.pixels() * self.samples_per_pixel
    }

    /// A stored sample as a number: its `bits_stored` low bits, sign-extended when signed.
    fn value(&self, raw: u32) -> f32 {
        let bits = u32::from(self.bits_stored.min(32));
        let masked = if bits == 32 {
            raw
        } else {
            raw & ((1u32 << bits) - 1)
        };
        if self.signed && bits > 0 {
            let shift = 32 - bits;
            ((masked << shift) as i32 >> shift) as f32
        } else {
            masked as f32
        }
    }

    /// JPEG codecs hand colour back as RGB.
    fn photometric_after_decoding(&self, syntax: &str) -> PhotometricInterpretation {
        if self.samples_per_pixel == 3 && JPEG_FAMILY.contains(&syntax) {
            PhotometricInterpretation::Rgb
        } else {
            self.photometric.clone()
        }
    }

    /// Interleaves a planar (RRR…GGG…BBB…) frame; other frames pass through.
    fn interleave(&self, frame: Vec<u32>) -> Vec<u32> {
        if !self.planar || self.samples_per_pixel != 3 {
            return frame;
        }
        let plane = self.pixels();
        (0..plane)
            .flat_map(|i| [frame[i], frame[plane + i], frame[2 * plane + i]])
            .collect()
    }
}

/// Encapsulated pixel data split into one byte string per frame (PS3.5 A.4): one fragment per
/// frame, all fragments for a single frame, the Basic Offset Table when there is one, else a
/// new frame at each fragment that `starts_frame`.
fn frame_fragments<'a>(
    value: &'a Value,
    frames: usize,
    starts_frame: impl Fn(&[u8]) -> bool,
) -> Result<Vec<Cow<'a, [u8]>>, DicomError> {
    let (Some(fragments), Some(offsets)) = (value.fragments(), value.offset_table()) else {
        return Err(fail("pixel data is not encapsulated"));
    };
    let joined = |group: &[Vec<u8>]| -> Cow<'a, [u8]> {
        match group {
            [] => Cow::Borrowed(&[]),
            _ => Cow::Owned(group.concat()),
        }
    };
    if fragments.len() == frames {
        return Ok(fragments
            .iter()
            .map(|f| Cow::Borrowed(f.as_slice()))
            .collect());
    }
    if frames == 1 {
        return Ok(vec![joined(fragments)]);
    }
    let mut starts = Vec::with_capacity(frames);
    if offsets.len() == frames {
        // Each offset counts the bytes of the fragment items before the frame's first one,
        // 8 bytes of item header each.
        let mut position = 0u64;
        let mut next = offsets.iter().peekable();
        for (i, fragment) in fragments.iter().enumerate() {
            if next.peek().is_some_and(|&&o| u64::from(o) == position) {
                starts.push(i);
                next.next();
            }
            position += 8 + fragment.len() as u64;
        }
    } else {
        starts.extend(
            fragments
                .iter()
                .enumerate()
                .filter(|(_, f)| starts_frame(f))
                .map(|(i, _)| i),
        );
    }
    if starts.len() != frames || starts.first() != Some(&0) {
        return Err(fail(format!(
            "{} fragments could not be assigned to {frames} frames",
            fragments.len()
        )));
    }
    Ok(starts
        .iter()
        .enumerate()
        .map(|(k, &start)| {
            let end = starts.get(k + 1).copied().unwrap_or(fragments.len());
            joined(&fragments[start..end])
        })
        .collect())
}

fn jpeg_frames(value: &Value, layout: &Layout) -> Result<Vec<Vec<u32>>, DicomError> {
    let is_soi = |f: &[u8]| f.starts_with(&[0xFF, 0xD8]);
    let fragments = frame_fragments(value, layout.frames, is_soi)?;
    fragments
        .par_iter()
        .map_init(Decompressor::new, |decompressor, data| {
            let decompressor = decompressor.as_mut().map_err(|e| jpeg_fail(e.clone()))?;
            let frame = decompressor.decode(data).map_err(jpeg_fail)?;
            if (frame.height, frame.width) != (layout.rows, layout.columns)
                || usize::from(frame.components) != layout.samples_per_pixel
            {
                return Err(fail(format!(
                    "the JPEG frame is {} × {} × {}, the data set says {} × {} × {}",
                    frame.height,
                    frame.width,
                    frame.components,
                    layout.rows,
                    layout.columns,
                    layout.samples_per_pixel
                )));
            }
            if u16::from(frame.precision) > layout.bits_allocated {
                return Err(fail(format!(
                    "the JPEG frame has {}-bit samples in {}-bit pixel cells",
                    frame.precision, layout.bits_allocated
                )));
            }
            Ok(frame.samples.into_iter().map(u32::from).collect())
        })
        .collect()
}

fn jpeg_fail(error: JpegError) -> DicomError {
    fail(format!("JPEG: {error}"))
}

/// One RLE Lossless frame (PS3.5 Annex G): a header of segment offsets, then one PackBits
/// segment per byte plane, most significant byte first, sample by sample.
fn rle_frame(data: &[u8], layout: &Layout) -> Result<Vec<u32>, DicomError> {
    let bytes_per_sample = usize::from(layout.bits_allocated.div_ceil(8));
    let expected = layout.samples_per_pixel * bytes_per_sample;
    let header = data.get(..64).ok_or_else(|| fail("RLE header truncated"))?;
    let word = |i: usize| {
        u32::from_le_bytes([
            header[i * 4],
            header[i * 4 + 1],
            header[i * 4 + 2],
            header[i * 4 + 3],
        ]) as usize
    };
    let segments = word(0);
    if segments != expected || segments > RLE_MAX_SEGMENTS {
        return Err(fail(format!(
            "RLE frame has {segments} segments, {expected} expected"
        )));
    }
    let pixels = layout.pixels();
    let mut values = vec![0u32; layout.samples()];
    for segment in 0..segments {
        let start = word(segment + 1);
        let end = if segment + 1 < segments {
            word(segment + 2)
        } else {
            data.len()
        };
        let encoded = data
            .get(start..end)
            .ok_or_else(|| fail("RLE segment offsets out of range"))?;
        let plane = unpack_bits(encoded, pixels)?;
        let (sample, byte) = (segment / bytes_per_sample, segment % bytes_per_sample);
        let shift = 8 * (bytes_per_sample - 1 - byte);
        // Samples interleaved per pixel in the output.
        for (i, &b) in plane.iter().enumerate() {
            values[i * layout.samples_per_pixel + sample] |= u32::from(b) << shift;
        }
    }
    Ok(values)
}

/// PackBits: a header byte n in 0..=127 copies n + 1 literal bytes; -127..=-1 repeats the next
/// byte 1 - n times; -128 is skipped. Output is exactly `len` bytes.
fn unpack_bits(mut encoded: &[u8], len: usize) -> Result<Vec<u8>, DicomError> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let Some((&header, rest)) = encoded.split_first() else {
            return Err(fail("RLE segment ends early"));
        };
        let n = header as i8;
        if n >= 0 {
            let count = n as usize + 1;
            let literal = rest
                .get(..count)
                .ok_or_else(|| fail("RLE segment ends early"))?;
            out.extend_from_slice(literal);
            encoded = &rest[count..];
        } else if n != -128 {
            let &byte = rest.first().ok_or_else(|| fail("RLE segment ends early"))?;
            out.extend(std::iter::repeat_n(byte, (1 - isize::from(n)) as usize));
            encoded = &rest[1..];
        } else {
            encoded = rest;
        }
    }
    out.truncate(len);
    Ok(out)
}

fn native_frames(
    value: &Value,
    layout: &Layout,
    big_endian: bool,
) -> Result<Vec<Vec<u32>>, DicomError> {
    let Value::Primitive(primitive) = value else {
        return Err(fail("native pixel data is encapsulated"));
    };
    let samples = layout.samples();
    let values: Vec<u32> = match layout.bits_allocated {
        1 => {
            // Bits packed little-end first, frames one after another without padding.
            let bytes = primitive.to_bytes();
            let total = samples * layout.frames;
            if bytes.len() * 8 < total {
                return Err(fail("pixel data shorter than its frames"));
            }
            (0..total)
                .map(|i| u32::from((bytes[i / 8] >> (i % 8)) & 1))
                .collect()
        }
        32 => match primitive {
            PrimitiveValue::U32(v) => v.to_vec(),
            PrimitiveValue::I32(v) => v.iter().map(|&x| x as u32).collect(),
            // OW is read as 16-bit words in the machine's order; a big endian file keeps the
            // high word of each 32-bit sample first.
            PrimitiveValue::U16(words) => words
                .chunks_exact(2)
                .map(|w| {
                    let (first, second) = (u32::from(w[0]), u32::from(w[1]));
                    if big_endian {
                        first << 16 | second
                    } else {
                        second << 16 | first
                    }
                })
                .collect(),
            other => other
                .to_bytes()
                .chunks_exact(4)
                .map(|b| {
                    let b = [b[0], b[1], b[2], b[3]];
                    if big_endian {
                        u32::from_be_bytes(b)
                    } else {
                        u32::from_le_bytes(b)
                    }
                })
                .collect(),
        },
        other => return Err(fail(format!("{other} bits allocated"))),
    };
    if values.len() < samples * layout.frames {
        return Err(fail("pixel data shorter than its frames"));
    }
    Ok(values
        .chunks_exact(samples)
        .take(layout.frames)
        .map(|frame| layout.interleave(frame.to_vec()))
        .collect())
}

/// Rescale Slope and Intercept; for an RT Dose grid, the Dose Grid Scaling (to Gy).
fn rescale(object: &DefaultDicomObject) -> (f32, f32) {
    let float = |tag| {
        let element = object.get(tag)?;
        let value = if element.vr() == VR::UN {
            // Sent with an unknown VR (as some RLE RT Dose files are): the bytes of a DS.
            let bytes = element.to_bytes().ok()?;
            let text = String::from_utf8_lossy(&bytes);
            text.split('\\').next()?.trim().parse::<f64>().ok()?
        } else {
            element.to_float64().ok()?
        };
        value.is_finite().then_some(value)
    };
    let slope = float(tags::RESCALE_SLOPE)
        .or_else(|| float(tags::DOSE_GRID_SCALING))
        .filter(|s| *s != 0.0)
        .unwrap_or(1.0);
    let intercept = float(tags::RESCALE_INTERCEPT).unwrap_or(0.0);
    (slope as f32, intercept as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(bits_allocated: u16, bits_stored: u16, signed: bool) -> Layout {
        Layout {
            rows: 1,
            columns: 2,
            frames: 1,
            samples_per_pixel: 1,
            bits_allocated,
            bits_stored,
            signed,
            planar: false,
            photometric: PhotometricInterpretation::Monochrome2,
        }
    }

    #[test]
    fn stored_values_are_masked_and_sign_extended() {
        let signed = layout(16, 12, true);
        assert_eq!(signed.value(0x0FFF), -1.0);
        assert_eq!(signed.value(0xF7FF), 2047.0);
        let unsigned = layout(32, 32, false);
        assert_eq!(unsigned.value(u32::MAX), u32::MAX as f32);
        assert_eq!(layout(32, 32, true).value(u32::MAX), -1.0);
    }

    #[test]
    fn packbits_literals_runs_and_no_ops() {
        // literal of 2, run of 3 × 7, no-op, literal of 1
        let encoded = [1, 10, 11, (-2i8) as u8, 7, 0x80, 0, 12];
        assert_eq!(unpack_bits(&encoded, 6).unwrap(), [10, 11, 7, 7, 7, 12]);
        assert!(unpack_bits(&encoded[..4], 6).is_err());
    }

    #[test]
    fn a_32_bit_rle_frame_assembles_its_byte_planes_high_byte_first() {
        let layout = layout(32, 32, false);
        let mut data = vec![0u8; 64];
        data[0] = 4;
        // Four segments, each a literal of two bytes (3 bytes encoded).
        for segment in 0..4u8 {
            let offset = 64 + 3 * u32::from(segment);
            let at = 4 + 4 * usize::from(segment);
            data[at..at + 4].copy_from_slice(&offset.to_le_bytes());
        }
        for plane in [[0x12, 0xAA], [0x34, 0xBB], [0x56, 0xCC], [0x78, 0xDD]] {
            data.extend([1, plane[0], plane[1]]);
        }
        assert_eq!(
            rle_frame(&data, &layout).unwrap(),
            [0x1234_5678, 0xAABB_CCDD]
        );
        data[0] = 2;
        assert!(rle_frame(&data, &layout).is_err());
    }
}
