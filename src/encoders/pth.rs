//! PyTorch state dicts read straight from `.pth` files, in both of PyTorch's formats: the zip
//! archive of PyTorch ≥ 1.6 (through candle's reader) and the legacy stream of earlier versions,
//! which candle does not read and in which published weights such as EfficientNet-Lite0's
//! come. The legacy stream is a sequence of pickles (magic number, protocol version, system
//! information, the state dict, the storage keys) followed by each storage's raw bytes, every
//! one prefixed by its element count (`torch/serialization.py`, `_legacy_save`).

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};

use super::EncoderError;

/// The first pickle of a legacy file: `torch.serialization.MAGIC_NUMBER`
/// (0x1950a86a20f9469cfc6c) as a 10-byte LONG1, after a PROTO 2 opcode, then STOP. It is matched
/// byte for byte: the number does not fit the pickle reader's 64-bit integers.
const LEGACY_MAGIC_PICKLE: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

/// Every tensor of the state dict in the file at `path`, by name.
pub fn read_state_dict(path: &Path) -> Result<HashMap<String, Tensor>, EncoderError> {
    let bytes = std::fs::read(path).map_err(|source| EncoderError::Weights {
        path: path.to_path_buf(),
        reason: source.to_string(),
    })?;
    let invalid = |reason: String| EncoderError::Weights {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.starts_with(b"PK\x03\x04") {
        let tensors = candle_core::pickle::read_all(path).map_err(|e| invalid(e.to_string()))?;
        return Ok(tensors.into_iter().collect());
    }
    read_legacy(&bytes).map_err(invalid)
}

fn read_legacy(bytes: &[u8]) -> Result<HashMap<String, Tensor>, String> {
    if !bytes.starts_with(&LEGACY_MAGIC_PICKLE) {
        return Err("not a PyTorch file (no magic number)".to_owned());
    }
    let mut cursor = Cursor::new(bytes);
    cursor.set_position(LEGACY_MAGIC_PICKLE.len() as u64);
    let mut next = |what: &str| -> Result<Object, String> {
        let mut stack = Stack::empty();
        stack
            .read_loop(&mut cursor)
            .map_err(|e| format!("reading the {what}: {e}"))?;
        stack
            .finalize()
            .map_err(|e| format!("reading the {what}: {e}"))
    };
    next("protocol version")?;
    next("system information")?;
    let state = next("state dict")?;
    let state = match state {
        Object::Build { callable, .. } => *callable,
        other => other,
    };
    let Object::Dict(entries) = state else {
        return Err("the file does not hold a state dict".to_owned());
    };
    let keys = match next("storage keys")? {
        Object::List(keys) => keys
            .into_iter()
            .map(|k| String::try_from(k).map_err(|_| "a storage key is not a string".to_owned()))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err("the storage keys are not a list".to_owned()),
    };
    // Each storage: element count (u64, little endian), then its bytes.
    let mut position = cursor.position() as usize;
    let mut infos = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        if let Some(info) = value
            .into_tensor_info(name, Path::new(""))
            .map_err(|e| e.to_string())?
        {
            infos.push(info);
        }
    }
    let mut storages: HashMap<String, (usize, usize)> = HashMap::new();
    for key in keys {
        let dtype = infos
            .iter()
            .find(|i| storage_key(&i.path) == key)
            .map(|i| i.dtype)
            .ok_or_else(|| format!("storage {key} is used by no tensor"))?;
        let count_bytes = bytes
            .get(position..position + 8)
            .ok_or("the file ends inside the storage data")?;
        let count = u64::from_le_bytes(count_bytes.try_into().map_err(|_| "short count")?) as usize;
        let start = position + 8;
        let len = count * dtype.size_in_bytes();
        if start + len > bytes.len() {
            return Err("the file ends inside the storage data".to_owned());
        }
        storages.insert(key, (start, len));
        position = start + len;
    }
    let mut tensors = HashMap::with_capacity(infos.len());
    for info in infos {
        let key = storage_key(&info.path);
        let (start, len) = storages
            .get(key)
            .copied()
            .ok_or_else(|| format!("tensor {} names a missing storage", info.name))?;
        let storage = &bytes[start..start + len];
        let tensor = if info.layout.is_contiguous() {
            let offset = info.layout.start_offset();
            let size = info.layout.shape().elem_count() * info.dtype.size_in_bytes();
            if offset + size > len {
                return Err(format!("tensor {} overruns its storage", info.name));
            }
            Tensor::from_raw_buffer(
                &storage[offset..offset + size],
                info.dtype,
                info.layout.dims(),
                &Device::Cpu,
            )
            .map_err(|e| e.to_string())?
        } else if info.dtype == DType::F32 {
            // A view with other strides (a transposed weight, typically): gather it.
            let values = gather_f32(storage, &info.layout)
                .ok_or_else(|| format!("tensor {} overruns its storage", info.name))?;
            Tensor::from_vec(values, info.layout.dims(), &Device::Cpu).map_err(|e| e.to_string())?
        } else {
            return Err(format!("tensor {} is strided and not f32", info.name));
        };
        let tensor = if info.dtype == DType::I64 {
            tensor
        } else {
            tensor.to_dtype(DType::F32).map_err(|e| e.to_string())?
        };
        tensors.insert(info.name, tensor);
    }
    Ok(tensors)
}

/// The elements of a strided f32 view, in row-major order; `None` if it overruns the storage.
fn gather_f32(storage: &[u8], layout: &candle_core::Layout) -> Option<Vec<f32>> {
    let dims = layout.dims();
    let strides = layout.stride();
    let first = layout.start_offset() / 4;
    let count = layout.shape().elem_count();
    let elements = storage.len() / 4;
    let mut out = Vec::with_capacity(count);
    let mut index = vec![0usize; dims.len()];
    for _ in 0..count {
        let at = first + index.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>();
        if at >= elements {
            return None;
        }
        let b = &storage[at * 4..at * 4 + 4];
        out.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        // Advance the multi-index, last dimension fastest.
        for d in (0..dims.len()).rev() {
            index[d] += 1;
            if index[d] < dims[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Some(out)
}

/// The storage key at the end of candle's `dir/key` path.
fn storage_key(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
