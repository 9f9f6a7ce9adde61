//! JPEG frames through libjpeg-turbo's TurboJPEG 3 API, for what jpeg-decoder (dicom-pixeldata's
//! codec) refuses: 12-bit DCT (JPEG extended, process 4), arithmetic coding, lossless at any
//! precision. The unsafe code of the project is confined to this module: a handle that is
//! created, used and destroyed here, and buffers sized from the header before each call.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int};

use turbojpeg_sys as tj;

/// Refuse images whose decoding would need more working memory than this (MiB): libjpeg-turbo
/// checks it before allocating, so a hostile header cannot exhaust memory.
const MAX_MEMORY_MIB: c_int = 2048;
/// Refuse progressive images with more scans than this (a known denial-of-service pattern).
const MAX_SCANS: c_int = 500;

/// One decoded JPEG frame: samples interleaved per pixel, as the codestream stores them (grey,
/// or RGB after libjpeg-turbo's YCbCr conversion).
#[derive(Debug)]
pub(super) struct JpegFrame {
    pub width: u32,
    pub height: u32,
    /// 1 (grey) or 3 (RGB).
    pub components: u8,
    /// Bits per sample in the codestream (2 to 16).
    pub precision: u8,
    pub samples: Vec<u16>,
}

#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct JpegError(pub(super) String);

/// A TurboJPEG decompression handle. Not shared between threads: each decoding thread makes its
/// own.
pub(super) struct Decompressor {
    handle: tj::tjhandle,
}

impl Decompressor {
    pub fn new() -> Result<Self, JpegError> {
        // SAFETY: tj3Init takes no pointers; a null result is checked below.
        let handle = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as c_int) };
        if handle.is_null() {
            return Err(JpegError("could not create a JPEG decompressor".to_owned()));
        }
        let decompressor = Self { handle };
        decompressor.set(tj::TJPARAM_TJPARAM_STOPONWARNING, 1)?;
        decompressor.set(tj::TJPARAM_TJPARAM_MAXMEMORY, MAX_MEMORY_MIB)?;
        decompressor.set(tj::TJPARAM_TJPARAM_SCANLIMIT, MAX_SCANS)?;
        Ok(decompressor)
    }

    pub fn decode(&mut self, data: &[u8]) -> Result<JpegFrame, JpegError> {
        // SAFETY: the handle is live; the buffer pointer and length come from one slice.
        let status =
            unsafe { tj::tj3DecompressHeader(self.handle, data.as_ptr(), data.len() as _) };
        if status != 0 {
            return Err(self.error("reading the JPEG header"));
        }
        let width = self.get(tj::TJPARAM_TJPARAM_JPEGWIDTH);
        let height = self.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT);
        let precision = self.get(tj::TJPARAM_TJPARAM_PRECISION);
        let colorspace = self.get(tj::TJPARAM_TJPARAM_COLORSPACE);
        let (Ok(width), Ok(height), Ok(precision)) = (
            u32::try_from(width),
            u32::try_from(height),
            u8::try_from(precision),
        ) else {
            return Err(JpegError(format!(
                "JPEG header has no valid size or precision ({width} × {height}, {precision} bits)"
            )));
        };
        if width == 0 || height == 0 || !(2..=16).contains(&precision) {
            return Err(JpegError(format!(
                "JPEG header has no valid size or precision ({width} × {height}, {precision} bits)"
            )));
        }
        let (components, format) = match colorspace as tj::TJCS {
            tj::TJCS_TJCS_GRAY => (1u8, tj::TJPF_TJPF_GRAY),
            tj::TJCS_TJCS_RGB | tj::TJCS_TJCS_YCbCr => (3, tj::TJPF_TJPF_RGB),
            other => {
                return Err(JpegError(format!(
                    "JPEG colour space {other} (CMYK or YCCK) is not an image DICOM allows"
                )));
            }
        };
        let row = width as usize * usize::from(components);
        let len = row
            .checked_mul(height as usize)
            .ok_or_else(|| JpegError("JPEG image too large".to_owned()))?;
        let pitch =
            c_int::try_from(row).map_err(|_| JpegError("JPEG image too wide".to_owned()))?;
        // Each call writes exactly `height` rows of `pitch` samples into a buffer of that size
        // (the header just read fixed both); the handle is live.
        let samples = match precision {
            2..=8 => {
                let mut out = vec![0u8; len];
                // SAFETY: see above; u8 samples.
                let status = unsafe {
                    tj::tj3Decompress8(
                        self.handle,
                        data.as_ptr(),
                        data.len() as _,
                        out.as_mut_ptr(),
                        pitch,
                        format,
                    )
                };
                self.check(status)?;
                out.into_iter().map(u16::from).collect()
            }
            9..=12 => {
                let mut out = vec![0i16; len];
                // SAFETY: see above; 16-bit samples holding 12-bit values.
                let status = unsafe {
                    tj::tj3Decompress12(
                        self.handle,
                        data.as_ptr(),
                        data.len() as _,
                        out.as_mut_ptr(),
                        pitch,
                        format,
                    )
                };
                self.check(status)?;
                out.into_iter().map(|v| v as u16).collect()
            }
            _ => {
                let mut out = vec![0u16; len];
                // SAFETY: see above; u16 samples (lossless only at this precision).
                let status = unsafe {
                    tj::tj3Decompress16(
                        self.handle,
                        data.as_ptr(),
                        data.len() as _,
                        out.as_mut_ptr(),
                        pitch,
                        format,
                    )
                };
                self.check(status)?;
                out
            }
        };
        Ok(JpegFrame {
            width,
            height,
            components,
            precision,
            samples,
        })
    }

    fn set(&self, param: tj::TJPARAM, value: c_int) -> Result<(), JpegError> {
        // SAFETY: the handle is live; no pointers.
        let status = unsafe { tj::tj3Set(self.handle, param as c_int, value) };
        self.check(status)
    }

    fn get(&self, param: tj::TJPARAM) -> c_int {
        // SAFETY: the handle is live; no pointers.
        unsafe { tj::tj3Get(self.handle, param as c_int) }
    }

    fn check(&self, status: c_int) -> Result<(), JpegError> {
        if status == 0 {
            Ok(())
        } else {
            Err(self.error("decoding JPEG"))
        }
    }

    fn error(&self, doing: &str) -> JpegError {
        // SAFETY: the handle is live; the library returns a NUL-terminated string it owns,
        // copied out here before any other call on the handle.
        let message = unsafe {
            let text = tj::tj3GetErrorStr(self.handle);
            if text.is_null() {
                String::from("unknown error")
            } else {
                CStr::from_ptr(text).to_string_lossy().into_owned()
            }
        };
        JpegError(format!("{doing}: {message}"))
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the handle was created by tj3Init and is destroyed exactly once.
        unsafe { tj::tj3Destroy(self.handle) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_jpeg_are_an_error() {
        let mut decompressor = Decompressor::new().unwrap();
        let error = decompressor.decode(b"not a jpeg at all").unwrap_err();
        assert!(error.0.contains("header"), "{error}");
        let mut truncated = vec![0xFF, 0xD8, 0xFF, 0xC1, 0x00, 0x0B, 0x0C];
        truncated.extend_from_slice(&[0; 4]);
        assert!(decompressor.decode(&truncated).is_err());
        assert!(decompressor.decode(&[]).is_err());
    }
}
