"""DICOM decode throughput in pydicom 3 with its pylibjpeg plugins (libjpeg, openjpeg, rle),
doing the same work as benches/decode.rs: every frame decoded, the modality LUT and a VOI window
applied, MONOCHROME1 inverted, YBR converted to RGB, values scaled to float32 in [0, 1].

Usage: decode_pydicom.py LIST OUT_OK SECONDS. Files pydicom cannot decode are skipped; the ones
it decodes are written to OUT_OK. Prints one JSON line.
"""
import io, json, sys, time

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut, convert_color_space


def display(data):
    ds = pydicom.dcmread(io.BytesIO(data))
    arr = ds.pixel_array
    photometric = ds.get("PhotometricInterpretation", "MONOCHROME2")
    if photometric.startswith("MONOCHROME"):
        arr = apply_modality_lut(arr, ds).astype(np.float32)
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            arr = apply_voi_lut(arr, ds).astype(np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo if hi > lo else 1.0)
        if photometric == "MONOCHROME1":
            arr = 1.0 - arr
    else:
        if photometric.startswith("YBR") and ds.file_meta.TransferSyntaxUID not in (
                "1.2.840.10008.1.2.4.50",):
            arr = convert_color_space(arr, photometric, "RGB")
        arr = arr.astype(np.float32) / float((1 << int(ds.BitsStored)) - 1)
    return arr


def _timed(data):
    t = time.perf_counter()
    display(data)
    return time.perf_counter() - t


paths = [p for p in open(sys.argv[1]).read().splitlines() if p]
seconds = float(sys.argv[3])
files, ok = [], []
for path in paths:
    data = open(path, "rb").read()
    try:
        display(data)
    except Exception:
        continue
    files.append(data)
    ok.append(path)
open(sys.argv[2], "w").write("".join(p + "\n" for p in ok))
if len(sys.argv) > 4 and sys.argv[4] == "--per-file":
    for path, data in zip(ok, files):
        best = min(_timed(data) for _ in range(3))
        print(f"{best * 1e3:.3f} {path}")
    sys.exit(0)
start = time.perf_counter()
decoded = values = 0
while time.perf_counter() - start < seconds:
    for data in files:
        values += display(data).size
        decoded += 1
elapsed = time.perf_counter() - start
print(json.dumps({"files": len(files), "decoded": decoded,
                  "files_per_s": round(decoded / elapsed, 2),
                  "mvalues_per_s": round(values / elapsed / 1e6, 2)}))
