//! Pixel decoding over real third-party files (pydicom 3.0.2 and pydicom-data 1.0.0, fetched by
//! scripts/fetch-test-data): every transfer syntax family of the corpus, pixel-identical
//! families, Hounsfield units, MONOCHROME1 and colour, and clean failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use prognostics::ingest::{decode_image, decode_modality_values};

fn corpus(package: &str, name: &str) -> Option<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/test-data");
    let path = match package {
        "pydicom" => root.join("pydicom-3.0.2/pydicom/data/test_files"),
        _ => root.join("pydicom-data-1.0.0/data_store/data"),
    }
    .join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            assert!(
                std::env::var_os("TEST_REQUIRE_DATA").is_none(),
                "test data missing ({name}): run scripts/fetch-test-data"
            );
            eprintln!("skipping: run scripts/fetch-test-data");
            None
        }
    }
}

fn assert_family_identical(package: &str, names: &[&str], frames: usize) {
    let Some(files) = names
        .iter()
        .map(|n| corpus(package, n))
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let reference = decode_modality_values(&files[0]).unwrap();
    assert_eq!(reference.len(), frames);
    for (name, bytes) in names.iter().zip(&files).skip(1) {
        let decoded = decode_modality_values(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded.len(), frames, "{name}");
        for (f, (a, b)) in reference.iter().zip(&decoded).enumerate() {
            assert!(a == b, "{name}: frame {f} differs from {}", names[0]);
        }
    }
}

#[test]
fn the_mr_small_family_decodes_to_identical_pixels() {
    assert_family_identical(
        "pydicom",
        &[
            "MR_small.dcm",
            "MR_small_RLE.dcm",
            "MR_small_jpeg_ls_lossless.dcm",
            "MR_small_jp2klossless.dcm",
            "MR_small_bigendian.dcm",
            "MR_small_implicit.dcm",
            "MR_small_expb.dcm",
        ],
        1,
    );
}

#[test]
fn the_emri_small_family_decodes_to_identical_pixels() {
    assert_family_identical(
        "pydicom-data",
        &[
            "emri_small.dcm",
            "emri_small_RLE.dcm",
            "emri_small_jpeg_2k_lossless.dcm",
            "emri_small_jpeg_ls_lossless.dcm",
            "emri_small_big_endian.dcm",
        ],
        10,
    );
}

#[test]
fn every_transfer_syntax_family_of_the_corpus_decodes() {
    // (package, file, frames, channels): one or more files per transfer syntax.
    let cases = [
        ("pydicom", "CT_small.dcm", 1, 1), // explicit VR little endian
        ("pydicom", "MR_small_implicit.dcm", 1, 1), // implicit VR little endian
        ("pydicom", "MR_small_bigendian.dcm", 1, 1), // explicit VR big endian
        ("pydicom", "image_dfl.dcm", 1, 1), // deflated
        ("pydicom", "MR_small_RLE.dcm", 1, 1), // RLE lossless
        ("pydicom-data", "OBXXXX1A_rle_2frame.dcm", 2, 3), // RLE, colour, 2 frames
        ("pydicom", "SC_rgb_jpeg_dcmtk.dcm", 1, 3), // JPEG baseline, YBR_FULL
        ("pydicom", "examples_ybr_color.dcm", 30, 3), // JPEG baseline, 30 frames
        ("pydicom-data", "JPEG-LL.dcm", 1, 1), // JPEG lossless SV1
        ("pydicom", "MR_small_jpeg_ls_lossless.dcm", 1, 1), // JPEG-LS lossless
        ("pydicom", "JPEGLSNearLossless_08.dcm", 1, 1), // JPEG-LS near-lossless
        ("pydicom", "JPEG2000.dcm", 1, 1), // JPEG 2000
        ("pydicom-data", "US1_J2KR.dcm", 1, 3), // JPEG 2000 lossless, colour
        ("pydicom-data", "RG1_J2KI.dcm", 1, 1), // JPEG 2000, CR MONOCHROME1
        ("pydicom", "SC_ybr_full_422_uncompressed.dcm", 1, 3), // native YBR_FULL_422
    ];
    let mut checked = 0;
    for (package, name, frames, channels) in cases {
        let Some(bytes) = corpus(package, name) else {
            return;
        };
        let image = decode_image(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(image.frames.len(), frames, "{name}");
        assert_eq!(image.channels, channels, "{name}");
        let expected = (image.rows * image.columns) as usize * usize::from(channels);
        for frame in &image.frames {
            assert_eq!(frame.len(), expected, "{name}");
            assert!(frame.iter().all(|v| (0.0..=1.0).contains(v)), "{name}");
            // A real image is not one flat value.
            let (min, max) = frame
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            assert!(max - min > 0.1, "{name}: contrast {min}..{max}");
        }
        checked += 1;
    }
    assert_eq!(checked, cases.len());
}

#[test]
fn ct_values_are_hounsfield_units() {
    let Some(bytes) = corpus("pydicom", "CT_small.dcm") else {
        return;
    };
    let frame = &decode_modality_values(&bytes).unwrap()[0];
    let min = frame.iter().copied().fold(f32::MAX, f32::min);
    let max = frame.iter().copied().fold(f32::MIN, f32::max);
    // Air outside the body is about -1000 HU; soft tissue and bone are above 0.
    assert!(min < -500.0 && max > 100.0, "{min}..{max}");
}

#[test]
fn lossy_and_uncompressed_copies_of_a_monochrome1_radiograph_agree() {
    let (Some(lossy), Some(raw)) = (
        corpus("pydicom-data", "RG1_J2KI.dcm"),
        corpus("pydicom-data", "RG1_UNCR.dcm"),
    ) else {
        return;
    };
    let a = decode_image(&lossy).unwrap();
    let b = decode_image(&raw).unwrap();
    assert_eq!((a.rows, a.columns), (b.rows, b.columns));
    let diff: f64 = a.frames[0]
        .iter()
        .zip(&b.frames[0])
        .map(|(x, y)| f64::from((x - y).abs()))
        .sum::<f64>()
        / a.frames[0].len() as f64;
    assert!(diff < 0.02, "mean absolute difference {diff}");
}

#[test]
fn damaged_compressed_pixel_data_is_an_error_not_a_panic() {
    let Some(mut bytes) = corpus("pydicom", "JPEG2000.dcm") else {
        return;
    };
    // Overwrite the second half of the file (inside the JPEG 2000 codestream) with zeros.
    let half = bytes.len() / 2;
    for b in &mut bytes[half..] {
        *b = 0;
    }
    assert!(decode_image(&bytes).is_err());
    let Some(mut rle) = corpus("pydicom", "MR_small_RLE.dcm") else {
        return;
    };
    let len = rle.len();
    rle.truncate(len - 100);
    assert!(decode_image(&rle).is_err());
}

#[test]
fn twelve_bit_jpeg_extended_is_reported_as_undecodable() {
    // The native JPEG decoder has no 12-bit sample precision (JPEG extended, process 4): such
    // instances are stored and marked, not decoded.
    let Some(bytes) = corpus("pydicom", "JPGExtended.dcm") else {
        return;
    };
    let error = decode_image(&bytes).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("pixel data could not be decoded"),
        "{error}"
    );
}
