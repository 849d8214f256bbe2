"""Writing a bundle: the files, a manifest naming each one's sha256, and the manifest's signature.

Written into a temporary folder beside the target and renamed into place, so a device (or a copy
job) never sees half a bundle; an earlier bundle in the target is replaced, any other content refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from matchday.edge.errors import ExportError
from matchday.edge.signing import BundleSigner
from matchday_edge import (
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    CategoricalSketch,
    Manifest,
    NumericSketch,
    ReferenceSketches,
    sketch_categorical,
    sketch_numeric,
)

BUNDLE_FILES = {MODEL_FILE, MANIFEST_FILE, SIGNATURE_FILE}


def reference_sketches(table: pa.Table, types: dict[str, str]) -> ReferenceSketches:
    """Each input's sketch of the reference rows, for the device's own drift check."""
    features: dict[str, NumericSketch | CategoricalSketch] = {}
    for name, kind in types.items():
        column = table.column(name)
        if kind == "string":
            features[name] = sketch_categorical(column.to_pylist())
        else:
            values = np.array([np.nan if v is None else float(v) for v in column.to_pylist()], dtype=np.float64)
            features[name] = sketch_numeric(values)
    return {"rows": table.num_rows, "features": features}


def write_bundle(folder: Path, model_bytes: bytes, manifest: Manifest, signer: BundleSigner) -> bytes:
    """``folder`` made a signed bundle of ``model_bytes`` and ``manifest`` (its ``files`` filled in); the manifest's bytes."""
    folder = folder.absolute()
    if folder.exists() and (not folder.is_dir() or not set(os.listdir(folder)) <= BUNDLE_FILES):
        raise ExportError(
            f"{folder} exists and is not a bundle folder: give a new or empty folder (an earlier bundle there is replaced)"
        )
    manifest["files"] = {MODEL_FILE: {"sha256": hashlib.sha256(model_bytes).hexdigest(), "bytes": len(model_bytes)}}
    manifest_bytes = json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n"
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (staging / MODEL_FILE).write_bytes(model_bytes)
        (staging / MANIFEST_FILE).write_bytes(manifest_bytes)
        (staging / SIGNATURE_FILE).write_bytes(signer.sign(manifest_bytes))
        staging.chmod(0o755)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            staging.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest_bytes
