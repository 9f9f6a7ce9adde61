//! Pixel data: decoded with dicom-pixeldata (native, JPEG baseline/extended/lossless, deflate;
//! JPEG 2000 through OpenJPEG; JPEG-LS through CharLS), or by `samples` for RLE Lossless (its
//! own checked decoder) and what dicom-pixeldata refuses (12-bit JPEG through libjpeg-turbo,
//! 32-bit and 1-bit samples), then normalised for display and for an encoder:
//! 1. the modality LUT (Rescale Slope/Intercept): CT values become Hounsfield units;
//! 2. a VOI window: the file's first Window Center/Width, else a preset for the modality (CT soft
//!    tissue, 40/400 HU), else the 0.5th–99.5th percentile of the frame, with the linear
//!    function of PS3.3 C.11.2.1.2.1, into [0, 1];
//! 3. MONOCHROME1 inverted, so that 1 is always white;
//! 4. colour (RGB, YBR_FULL, YBR_FULL_422 after the codec) as RGB in [0, 1].

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{
    ConvertOptions, DecodedPixelData, ModalityLutOption, PhotometricInterpretation, PixelDecoder,
    PlanarConfiguration, VoiLutOption,
};
use rayon::prelude::*;

use super::DicomError;
use super::decoded_size::check_decoded_size;
use super::part10::open;
use super::samples::{self, StoredSamples};

/// CT soft-tissue window (centre, width) in HU, used when a CT image carries no window.
const CT_WINDOW: (f32, f32) = (40.0, 400.0);
/// Percentiles of a frame's values that bound the window when neither file nor modality gives
/// one.
const AUTO_WINDOW_PERCENTILES: (f64, f64) = (0.005, 0.995);

/// Decoded frames ready for an encoder.
#[derive(Clone, Debug)]
pub struct DecodedImage {
    pub rows: u32,
    pub columns: u32,
    /// 1 (grey) or 3 (RGB, interleaved).
    pub channels: u8,
    /// One `rows × columns × channels` buffer per frame, each value in [0, 1].
    pub frames: Vec<Vec<f32>>,
}

/// Decodes every frame of a Part 10 file and normalises it for display (see the module doc).
/// Frames are decoded and normalised in parallel: a multi-frame instance is decoded frame by
/// frame (falling back to decoding it whole when its encoding does not allow that). RLE
/// Lossless, and what dicom-pixeldata cannot decode and `samples` can (12-bit JPEG, 32-bit and
/// 1-bit samples), is read there and normalised the same way.
pub fn decode_image(bytes: &[u8]) -> Result<DecodedImage, DicomError> {
    let object = open(bytes)?;
    check_decoded_size(&object)?;
    let context = FrameContext {
        window: file_window(&object).or_else(|| modality_window(&object)),
        palette: is_palette(&object)
            .then(|| Palette::read(&object))
            .transpose()?,
    };
    if samples::reads_first(&object) {
        return assemble(context.normalise_all(&samples::read_stored_samples(&object)?)?);
    }
    match decode_with_pixeldata(&object, &context) {
        Err(DicomError::Undecodable(_)) if samples::can_read(&object) => {
            let stored = samples::read_stored_samples(&object)?;
            assemble(context.normalise_all(&stored)?)
        }
        result => result,
    }
}

fn decode_with_pixeldata(
    object: &DefaultDicomObject,
    context: &FrameContext,
) -> Result<DecodedImage, DicomError> {
    let declared_frames = object
        .get(tags::NUMBER_OF_FRAMES)
        .and_then(|e| e.to_int::<u32>().ok())
        .unwrap_or(1);
    if declared_frames > 1 {
        let frames: Result<Vec<_>, DicomError> = (0..declared_frames)
            .into_par_iter()
            .map(|frame| {
                let pixels = guarded(|| object.decode_pixel_data_frame(frame))?;
                check_bit_depth(&pixels)?;
                context.normalise(&pixels, 0)
            })
            .collect();
        if let Ok(frames) = frames {
            return assemble(frames);
        }
    }
    let pixels = guarded(|| object.decode_pixel_data())?;
    check_bit_depth(&pixels)?;
    assemble(context.normalise_all(&pixels)?)
}

/// Runs one of dicom-pixeldata's decoders. Its RLE decoder indexed compressed data without
/// checking it (found by fuzzing; RLE is now read by `samples`), and its other codecs are no
/// more promised never to panic, so a decoder's panic is taken as this image's error, not the
/// service's.
fn guarded<T>(decode: impl FnOnce() -> Result<T, dicom_pixeldata::Error>) -> Result<T, DicomError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(decoded) => decoded.map_err(|e| DicomError::Undecodable(Box::new(e))),
        Err(_) => Err(DicomError::Codec {
            reason: "its compressed data is malformed (the decoder failed on it)".into(),
        }),
    }
}

/// Bits Stored within 1..=Bits Allocated, as dicom-pixeldata's lookup tables need: they assert
/// it (a panic, found by fuzzing: a JPEG 2000 image with Bits Stored out of range) and are
/// sized by it (16-bit samples declaring 32 bits stored would take a table of 2³² entries).
fn check_bit_depth(pixels: &DecodedPixelData<'_>) -> Result<(), DicomError> {
    let (stored, allocated) = (pixels.bits_stored(), pixels.bits_allocated());
    if stored == 0 || stored > allocated || stored > 32 {
        return Err(DicomError::Codec {
            reason: format!("{stored} bits stored in {allocated}-bit samples"),
        });
    }
    Ok(())
}

fn is_palette(object: &DefaultDicomObject) -> bool {
    object
        .get(tags::PHOTOMETRIC_INTERPRETATION)
        .and_then(|e| e.to_str().ok())
        .is_some_and(|v| v.trim() == "PALETTE COLOR")
}

/// One normalised frame: rows, columns, channels, values.
type Normalised = (u32, u32, u8, Vec<f32>);

fn assemble(frames: Vec<Normalised>) -> Result<DecodedImage, DicomError> {
    let Some(&(rows, columns, channels, _)) = frames.first() else {
        return Err(DicomError::NoFrames);
    };
    Ok(DecodedImage {
        rows,
        columns,
        channels,
        frames: frames.into_iter().map(|f| f.3).collect(),
    })
}

/// What normalising a frame needs from the instance beyond its pixels.
struct FrameContext {
    window: Option<(f32, f32)>,
    palette: Option<Palette>,
}

impl FrameContext {
    fn normalise_all(&self, pixels: &impl FrameSource) -> Result<Vec<Normalised>, DicomError> {
        (0..pixels.frame_count())
            .into_par_iter()
            .map(|frame| self.normalise(pixels, frame))
            .collect()
    }

    fn normalise(&self, pixels: &impl FrameSource, frame: u32) -> Result<Normalised, DicomError> {
        let (rows, columns) = (pixels.rows(), pixels.columns());
        let photometric = pixels.photometric();
        match photometric {
            PhotometricInterpretation::Monochrome1 | PhotometricInterpretation::Monochrome2 => {
                let invert = *photometric == PhotometricInterpretation::Monochrome1;
                let mut values = pixels.modality_frame(frame)?;
                let (centre, width) = self.window.unwrap_or_else(|| auto_window(&values));
                for x in &mut values {
                    let y = linear_window(*x, centre, width);
                    *x = if invert { 1.0 - y } else { y };
                }
                Ok((rows, columns, 1, values))
            }
            // JPEG 2000's reversible and irreversible colour transforms are undone by the codec.
            PhotometricInterpretation::Rgb
            | PhotometricInterpretation::YbrRct
            | PhotometricInterpretation::YbrIct
            | PhotometricInterpretation::YbrFull
            | PhotometricInterpretation::YbrFull422 => {
                let max = ((1u64 << pixels.bits_stored().clamp(1, 32)) - 1) as f32;
                let ybr = matches!(
                    photometric,
                    PhotometricInterpretation::YbrFull | PhotometricInterpretation::YbrFull422
                );
                let mut values = pixels.colour_frame(frame)?;
                for v in &mut values {
                    *v /= max;
                }
                if ybr {
                    ybr_to_rgb(&mut values);
                }
                Ok((rows, columns, 3, values))
            }
            PhotometricInterpretation::PaletteColor => {
                let palette =
                    self.palette
                        .as_ref()
                        .ok_or_else(|| DicomError::UnsupportedPhotometric {
                            value: "PALETTE COLOR without palette color LUTs".to_owned(),
                        })?;
                let indices = pixels.raw_frame(frame)?;
                Ok((rows, columns, 3, palette.apply(&indices)))
            }
            other => Err(DicomError::UnsupportedPhotometric {
                value: other.to_string(),
            }),
        }
    }
}

/// The frames' values after the modality LUT only (Hounsfield units for CT), the form in which
/// differently encoded copies of an image must agree. Monochrome images only.
pub fn decode_modality_values(bytes: &[u8]) -> Result<Vec<Vec<f32>>, DicomError> {
    let object = open(bytes)?;
    check_decoded_size(&object)?;
    let all_frames = |pixels: &dyn FrameSource| {
        (0..pixels.frame_count())
            .map(|frame| pixels.modality_frame(frame))
            .collect()
    };
    if samples::reads_first(&object) {
        return all_frames(&samples::read_stored_samples(&object)?);
    }
    let decoded = object
        .decode_pixel_data()
        .map_err(|e| DicomError::Undecodable(Box::new(e)))
        .and_then(|pixels| {
            check_bit_depth(&pixels)?;
            all_frames(&pixels)
        });
    match decoded {
        Err(DicomError::Undecodable(_)) if samples::can_read(&object) => {
            all_frames(&samples::read_stored_samples(&object)?)
        }
        result => result,
    }
}

/// Decoded pixel data, frame by frame, as normalising needs it.
trait FrameSource: Sync {
    fn rows(&self) -> u32;
    fn columns(&self) -> u32;
    fn photometric(&self) -> &PhotometricInterpretation;
    fn bits_stored(&self) -> u16;
    fn frame_count(&self) -> u32;
    /// Values after the modality LUT (monochrome images).
    fn modality_frame(&self, frame: u32) -> Result<Vec<f32>, DicomError>;
    /// Colour samples as stored, interleaved per pixel, as full triplets.
    fn colour_frame(&self, frame: u32) -> Result<Vec<f32>, DicomError>;
    /// Stored values without any LUT (palette indices).
    fn raw_frame(&self, frame: u32) -> Result<Vec<f32>, DicomError>;
}

impl FrameSource for DecodedPixelData<'_> {
    fn rows(&self) -> u32 {
        DecodedPixelData::rows(self)
    }
    fn columns(&self) -> u32 {
        DecodedPixelData::columns(self)
    }
    fn photometric(&self) -> &PhotometricInterpretation {
        self.photometric_interpretation()
    }
    fn bits_stored(&self) -> u16 {
        DecodedPixelData::bits_stored(self)
    }
    fn frame_count(&self) -> u32 {
        self.number_of_frames()
    }
    fn modality_frame(&self, frame: u32) -> Result<Vec<f32>, DicomError> {
        modality_frame(self, frame)
    }
    fn colour_frame(&self, frame: u32) -> Result<Vec<f32>, DicomError> {
        match subsampled_ybr_frame(self, frame) {
            Some(values) => Ok(values),
            None => colour_frame(self, frame),
        }
    }
    fn raw_frame(&self, frame: u32) -> Result<Vec<f32>, DicomError> {
        raw_frame(self, frame)
    }
}

impl FrameSource for StoredSamples {
    fn rows(&self) -> u32 {
        self.rows
    }
    fn columns(&self) -> u32 {
        self.columns
    }
    fn photometric(&self) -> &PhotometricInterpretation {
        &self.photometric
    }
    fn bits_stored(&self) -> u16 {
        self.bits_stored
    }
    fn frame_count(&self) -> u32 {
        self.frames.len() as u32
    }
    fn modality_frame(&self, frame: u32) -> Result<Vec<f32>, DicomError> {
        let (slope, intercept) = self.rescale;
        Ok(self
            .stored(frame)?
            .iter()
            .map(|&v| v * slope + intercept)
            .collect())
    }
    fn colour_frame(&self, frame: u32) -> Result<Vec<f32>, DicomError> {
        self.stored(frame).map(<[f32]>::to_vec)
    }
    fn raw_frame(&self, frame: u32) -> Result<Vec<f32>, DicomError> {
        self.stored(frame).map(<[f32]>::to_vec)
    }
}

impl StoredSamples {
    fn stored(&self, frame: u32) -> Result<&[f32], DicomError> {
        self.frames
            .get(frame as usize)
            .map(Vec::as_slice)
            .ok_or(DicomError::NoFrames)
    }
}

fn modality_frame(pixels: &DecodedPixelData<'_>, frame: u32) -> Result<Vec<f32>, DicomError> {
    let options = ConvertOptions::new()
        .with_modality_lut(ModalityLutOption::Default)
        .with_voi_lut(VoiLutOption::Identity);
    pixels
        .to_vec_frame_with_options::<f32>(frame, &options)
        .map_err(|e| DicomError::Undecodable(Box::new(e)))
}

/// Uncompressed YBR_FULL_422 (8 bit): each pair of pixels is stored as Y1 Y2 Cb Cr (PS3.3
/// C.7.6.3.1.2), two bytes per pixel. Returns the frame as full Y Cb Cr triplets, or `None` when
/// the data is not laid out that way (codecs hand back full triplets).
fn subsampled_ybr_frame(pixels: &DecodedPixelData<'_>, frame: u32) -> Option<Vec<f32>> {
    if pixels.photometric_interpretation() != &PhotometricInterpretation::YbrFull422
        || pixels.bits_allocated() != 8
    {
        return None;
    }
    let size = pixels.rows() as usize * pixels.columns() as usize * 2;
    let data = pixels.data();
    if data.len() != size * pixels.number_of_frames() as usize {
        return None;
    }
    let frame = &data[size * frame as usize..size * (frame as usize + 1)];
    let mut out = Vec::with_capacity(size / 2 * 3);
    for q in frame.chunks_exact(4) {
        let (cb, cr) = (f32::from(q[2]), f32::from(q[3]));
        out.extend([f32::from(q[0]), cb, cr, f32::from(q[1]), cb, cr]);
    }
    Some(out)
}

/// Stored values, without any LUT.
fn raw_frame(pixels: &DecodedPixelData<'_>, frame: u32) -> Result<Vec<f32>, DicomError> {
    let options = ConvertOptions::new()
        .with_modality_lut(ModalityLutOption::None)
        .with_voi_lut(VoiLutOption::Identity);
    pixels
        .to_vec_frame_with_options::<f32>(frame, &options)
        .map_err(|e| DicomError::Undecodable(Box::new(e)))
}

/// The Red, Green and Blue Palette Color LUTs (PS3.3 C.7.6.3.1.5-6), each entry scaled to [0, 1].
struct Palette {
    first_mapped: f32,
    /// (r, g, b) per entry.
    entries: Vec<[f32; 3]>,
}

impl Palette {
    fn read(object: &DefaultDicomObject) -> Result<Self, DicomError> {
        let unsupported = || DicomError::UnsupportedPhotometric {
            value: "PALETTE COLOR without complete palette color LUTs".to_owned(),
        };
        let descriptors = [
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        ];
        let data = [
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        ];
        let descriptor = object
            .get(descriptors[0])
            .and_then(|e| e.to_multi_int::<i64>().ok())
            .filter(|d| d.len() == 3)
            .ok_or_else(unsupported)?;
        let count = if descriptor[0] == 0 {
            65_536
        } else {
            descriptor[0].unsigned_abs() as usize
        };
        let first_mapped = descriptor[1] as f32;
        let segmented = [
            tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        ];
        let words = |tag| object.get(tag).and_then(|e| e.to_multi_int::<u16>().ok());
        let mut channels = Vec::with_capacity(3);
        for (tag, segmented_tag) in data.into_iter().zip(segmented) {
            let values = match words(tag) {
                Some(values) => values,
                None => words(segmented_tag)
                    .and_then(|s| expand_segmented_lut(&s, count))
                    .ok_or_else(unsupported)?,
            };
            if values.len() < count {
                return Err(unsupported());
            }
            channels.push(values);
        }
        // 16-bit entries use the whole range; 8-bit entries stored in 16-bit words do not.
        let max = channels
            .iter()
            .flat_map(|c| c.iter())
            .copied()
            .max()
            .unwrap_or(0);
        let scale = if max > 255 { 65_535.0 } else { 255.0 };
        let entries = (0..count)
            .map(|i| {
                [
                    f32::from(channels[0][i]) / scale,
                    f32::from(channels[1][i]) / scale,
                    f32::from(channels[2][i]) / scale,
                ]
            })
            .collect();
        Ok(Self {
            first_mapped,
            entries,
        })
    }

    fn apply(&self, indices: &[f32]) -> Vec<f32> {
        let last = self.entries.len().saturating_sub(1);
        let mut out = Vec::with_capacity(indices.len() * 3);
        for &value in indices {
            let i = (value - self.first_mapped).max(0.0) as usize;
            out.extend_from_slice(&self.entries[i.min(last)]);
        }
        out
    }
}

/// Expands Segmented Palette Color LUT Data (PS3.3 C.7.9.2) into `count` entries: discrete
/// segments (opcode 0) copy values, linear segments (1) ramp from the previous value, indirect
/// segments (2) replay earlier segments from a byte offset. `None` when the data is malformed.
fn expand_segmented_lut(words: &[u16], count: usize) -> Option<Vec<u16>> {
    fn expand(
        words: &[u16],
        start: usize,
        segments: Option<usize>,
        out: &mut Vec<u16>,
        depth: u8,
    ) -> Option<()> {
        let mut at = start;
        let mut done = 0;
        while at < words.len() && segments.is_none_or(|n| done < n) {
            let (opcode, length) = (words[at], usize::from(*words.get(at + 1)?));
            match opcode {
                0 => {
                    out.extend_from_slice(words.get(at + 2..at + 2 + length)?);
                    at += 2 + length;
                }
                1 => {
                    let start_value = f64::from(*out.last()?);
                    let end_value = f64::from(*words.get(at + 2)?);
                    out.extend((1..=length).map(|i| {
                        (start_value + (end_value - start_value) * i as f64 / length as f64).round()
                            as u16
                    }));
                    at += 3;
                }
                2 if depth == 0 => {
                    let low = u32::from(*words.get(at + 2)?);
                    let high = u32::from(*words.get(at + 3)?);
                    let offset = ((high << 16 | low) / 2) as usize;
                    expand(words, offset, Some(length), out, depth + 1)?;
                    at += 4;
                }
                _ => return None,
            }
            done += 1;
        }
        Some(())
    }
    let mut out = Vec::with_capacity(count);
    expand(words, 0, None, &mut out, 0)?;
    (out.len() >= count).then_some(out)
}

/// A colour frame as interleaved samples, whatever the planar configuration.
fn colour_frame(pixels: &DecodedPixelData<'_>, frame: u32) -> Result<Vec<f32>, DicomError> {
    let options = ConvertOptions::new()
        .with_modality_lut(ModalityLutOption::None)
        .with_voi_lut(VoiLutOption::Identity);
    if pixels.planar_configuration() == PlanarConfiguration::Standard {
        return pixels
            .to_vec_frame_with_options::<f32>(frame, &options)
            .map_err(|e| DicomError::Undecodable(Box::new(e)));
    }
    // Planar (RRR…GGG…BBB…): read the raw samples and interleave them here.
    let raw = pixels
        .frame_data(frame)
        .map_err(|e| DicomError::Undecodable(Box::new(e)))?;
    let samples: Vec<f32> = if pixels.bits_allocated() > 8 {
        raw.chunks_exact(2)
            .map(|c| f32::from(u16::from_le_bytes([c[0], c[1]])))
            .collect()
    } else {
        raw.iter().map(|&b| f32::from(b)).collect()
    };
    let plane = samples.len() / 3;
    let mut out = Vec::with_capacity(samples.len());
    for i in 0..plane {
        out.extend([samples[i], samples[plane + i], samples[2 * plane + i]]);
    }
    Ok(out)
}

/// Full-range YCbCr (PS3.3 C.7.6.3.1.2) to RGB, in place, on values in [0, 1].
fn ybr_to_rgb(values: &mut [f32]) {
    for px in values.chunks_exact_mut(3) {
        let (y, cb, cr) = (px[0], px[1] - 0.5, px[2] - 0.5);
        px[0] = (y + 1.402 * cr).clamp(0.0, 1.0);
        px[1] = (y - 0.344_136 * cb - 0.714_136 * cr).clamp(0.0, 1.0);
        px[2] = (y + 1.772 * cb).clamp(0.0, 1.0);
    }
}

/// PS3.3 C.11.2.1.2.1, linear function, scaled to [0, 1].
fn linear_window(x: f32, centre: f32, width: f32) -> f32 {
    let width = width.max(1.0);
    if width <= 1.0 {
        return if x < centre - 0.5 { 0.0 } else { 1.0 };
    }
    (((x - (centre - 0.5)) / (width - 1.0)) + 0.5).clamp(0.0, 1.0)
}

fn file_window(object: &DefaultDicomObject) -> Option<(f32, f32)> {
    let first = |tag| {
        object
            .get(tag)
            .and_then(|e| e.to_multi_float64().ok())
            .and_then(|v| v.first().copied())
    };
    let centre = first(tags::WINDOW_CENTER)?;
    let width = first(tags::WINDOW_WIDTH)?;
    (width > 0.0).then_some((centre as f32, width as f32))
}

fn modality_window(object: &DefaultDicomObject) -> Option<(f32, f32)> {
    let modality = object.get(tags::MODALITY)?.to_str().ok()?;
    match modality.trim() {
        "CT" => Some(CT_WINDOW),
        _ => None,
    }
}

/// A window spanning the frame's robust value range: two selections, linear time.
fn auto_window(values: &[f32]) -> (f32, f32) {
    let mut finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return (0.5, 1.0);
    }
    let last = finite.len() - 1;
    let rank = |q: f64| ((last as f64) * q).round() as usize;
    let (lo_rank, hi_rank) = (
        rank(AUTO_WINDOW_PERCENTILES.0),
        rank(AUTO_WINDOW_PERCENTILES.1),
    );
    let (_, hi, _) = finite.select_nth_unstable_by(hi_rank, f32::total_cmp);
    let hi = *hi;
    // Every value below position hi_rank is now no greater than hi: select within them.
    let lo = if lo_rank < hi_rank {
        *finite[..hi_rank]
            .select_nth_unstable_by(lo_rank, f32::total_cmp)
            .1
    } else {
        hi
    };
    let width = (hi - lo).max(1.0);
    (lo + width / 2.0, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segmented_luts_expand_discrete_linear_and_indirect_segments() {
        // discrete [0, 10], linear to 40 over 3, then replay the first segment (byte offset 0)
        let words = [0, 2, 0, 10, 1, 3, 40, 2, 1, 0, 0];
        assert_eq!(
            expand_segmented_lut(&words, 7).unwrap(),
            [0, 10, 20, 30, 40, 0, 10]
        );
        assert!(expand_segmented_lut(&words, 8).is_none());
        assert!(expand_segmented_lut(&[0, 5, 1], 1).is_none());
        assert!(expand_segmented_lut(&[1, 3, 40], 3).is_none());
    }

    #[test]
    fn the_linear_window_maps_its_range_onto_zero_to_one() {
        // CT soft tissue: -160 HU and below black, 240 HU and above white.
        assert_eq!(linear_window(-1000.0, 40.0, 400.0), 0.0);
        assert_eq!(linear_window(1000.0, 40.0, 400.0), 1.0);
        let mid = linear_window(40.0, 40.0, 400.0);
        assert!((mid - 0.5).abs() < 0.01, "{mid}");
    }

    #[test]
    fn full_range_ybr_grey_stays_grey() {
        let mut px = vec![0.25, 0.5, 0.5];
        ybr_to_rgb(&mut px);
        for v in px {
            assert!((v - 0.25).abs() < 1e-6);
        }
    }

    #[test]
    fn the_automatic_window_takes_the_same_percentiles_as_a_full_sort() {
        let values: Vec<f32> = (0..10_007u32)
            .map(|i| ((i * 7919) % 10_007) as f32 * 0.5 - 300.0)
            .chain([f32::NAN, f32::INFINITY])
            .collect();
        let mut sorted: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f32::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        let (lo, hi) = (at(AUTO_WINDOW_PERCENTILES.0), at(AUTO_WINDOW_PERCENTILES.1));
        let (centre, width) = auto_window(&values);
        assert_eq!(width, hi - lo);
        assert_eq!(centre, lo + (hi - lo) / 2.0);
    }

    #[test]
    fn the_automatic_window_ignores_outliers() {
        let mut values: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        values.push(1.0e9);
        let (centre, width) = auto_window(&values);
        assert!(width < 1100.0 && centre < 600.0, "{centre} {width}");
    }
}
