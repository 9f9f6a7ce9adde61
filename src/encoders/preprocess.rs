//! Frames into model input: grey replicated to RGB, resized to the model's square input with
//! bilinear interpolation (half-pixel centres, as PyTorch's `interpolate(align_corners=False)`),
//! and normalised per channel. The whole field of view is kept: the image is stretched, not
//! cropped, because a lesion at the edge of a radiograph matters as much as one at its centre.

use super::{EncoderError, Normalisation};

/// A decoded frame: `rows × columns × channels` values in [0, 1], interleaved.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub rows: usize,
    pub columns: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    pub values: &'a [f32],
}

/// The frame as a `3 × size × size` planar buffer, normalised.
pub fn preprocess(
    frame: &Frame<'_>,
    size: usize,
    normalisation: &Normalisation,
) -> Result<Vec<f32>, EncoderError> {
    let (rows, columns, channels) = (frame.rows, frame.columns, frame.channels);
    if rows == 0
        || columns == 0
        || !(channels == 1 || channels == 3)
        || frame.values.len() != rows * columns * channels
    {
        return Err(EncoderError::EmptyImage);
    }
    let mut out = vec![0f32; 3 * size * size];
    let scale_y = rows as f32 / size as f32;
    let scale_x = columns as f32 / size as f32;
    let sample = |y: usize, x: usize, c: usize| frame.values[(y * columns + x) * channels + c];
    for oy in 0..size {
        let sy = ((oy as f32 + 0.5) * scale_y - 0.5).clamp(0.0, (rows - 1) as f32);
        let y0 = sy.floor() as usize;
        let y1 = (y0 + 1).min(rows - 1);
        let fy = sy - y0 as f32;
        for ox in 0..size {
            let sx = ((ox as f32 + 0.5) * scale_x - 0.5).clamp(0.0, (columns - 1) as f32);
            let x0 = sx.floor() as usize;
            let x1 = (x0 + 1).min(columns - 1);
            let fx = sx - x0 as f32;
            for c in 0..3 {
                let sc = if channels == 1 { 0 } else { c };
                let top = sample(y0, x0, sc) * (1.0 - fx) + sample(y0, x1, sc) * fx;
                let bottom = sample(y1, x0, sc) * (1.0 - fx) + sample(y1, x1, sc) * fx;
                let v = top * (1.0 - fy) + bottom * fy;
                out[(c * size + oy) * size + ox] =
                    (v - normalisation.mean[c]) / normalisation.std[c];
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTITY: Normalisation = Normalisation {
        mean: [0.0; 3],
        std: [1.0; 3],
    };

    #[test]
    fn a_grey_frame_fills_all_three_channels() {
        let values = vec![0.25f32; 4 * 4];
        let frame = Frame {
            rows: 4,
            columns: 4,
            channels: 1,
            values: &values,
        };
        let out = preprocess(&frame, 2, &IDENTITY).unwrap();
        assert_eq!(out.len(), 12);
        assert!(out.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn resizing_keeps_a_gradient_monotonic_and_normalises() {
        let values: Vec<f32> = (0..8).map(|x| x as f32 / 7.0).collect();
        let frame = Frame {
            rows: 1,
            columns: 8,
            channels: 1,
            values: &values,
        };
        let n = Normalisation {
            mean: [0.5; 3],
            std: [0.5; 3],
        };
        let out = preprocess(&frame, 4, &n).unwrap();
        let row: Vec<f32> = out[..4].to_vec();
        assert!(row.windows(2).all(|w| w[0] < w[1]), "{row:?}");
        assert!(row[0] > -1.0 && row[3] < 1.0);
    }

    #[test]
    fn a_frame_whose_size_disagrees_is_refused() {
        let values = vec![0.0f32; 5];
        let frame = Frame {
            rows: 2,
            columns: 2,
            channels: 1,
            values: &values,
        };
        assert!(preprocess(&frame, 2, &IDENTITY).is_err());
    }
}
