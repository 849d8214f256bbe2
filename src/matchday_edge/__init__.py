"""matchday_edge: a matchday model on a device. Load a signed bundle, predict offline, keep every
prediction and label in a bounded on-device buffer, and sync it home when the server is reachable.

Imports only onnxruntime, NumPy and the standard library (a test holds this). Its names load on first
use, so the server can import the bundle's format and the constants both sides share (the manifest's
and protocol's names) without onnxruntime.

>>> import matchday_edge
>>> "EdgeModel" in matchday_edge.__all__
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matchday_edge.buffer import BufferStats, OnFull, RefusedPrediction, TelemetryBuffer
    from matchday_edge.bundle import Bundle, load_bundle
    from matchday_edge.drift import DriftReport, FeatureDrift, sketch_categorical, sketch_numeric
    from matchday_edge.ed25519 import parse_public_key, verify
    from matchday_edge.errors import BufferError, BufferFull, BundleRefused, EdgeError, InvalidRows, SyncRefused
    from matchday_edge.loopback import LoopbackServer
    from matchday_edge.manifest import (
        FORMAT_VERSION,
        MANIFEST_FILE,
        MODEL_FILE,
        SIGNATURE_FILE,
        CategoricalSketch,
        InputSpec,
        Manifest,
        NumericSketch,
        Outputs,
        Parity,
        ReferenceSketches,
        TensorType,
    )
    from matchday_edge.model import EdgeModel, Prediction
    from matchday_edge.protocol import EDGE_NAMESPACE, MAX_ROWS_PER_REQUEST, TELEMETRY_PATH, request_id
    from matchday_edge.scoring import OnnxScorer
    from matchday_edge.sync import SyncResult, Transport, urllib_transport

_LAZY = {
    "BufferStats": "buffer",
    "OnFull": "buffer",
    "RefusedPrediction": "buffer",
    "TelemetryBuffer": "buffer",
    "Bundle": "bundle",
    "load_bundle": "bundle",
    "DriftReport": "drift",
    "FeatureDrift": "drift",
    "parse_public_key": "ed25519",
    "verify": "ed25519",
    "BufferError": "errors",
    "BufferFull": "errors",
    "BundleRefused": "errors",
    "EdgeError": "errors",
    "InvalidRows": "errors",
    "SyncRefused": "errors",
    "LoopbackServer": "loopback",
    "FORMAT_VERSION": "manifest",
    "Manifest": "manifest",
    "EdgeModel": "model",
    "Prediction": "model",
    "EDGE_NAMESPACE": "protocol",
    "request_id": "protocol",
    "SyncResult": "sync",
    "Transport": "sync",
    "urllib_transport": "sync",
    "TELEMETRY_PATH": "protocol",
    "MAX_ROWS_PER_REQUEST": "protocol",
    "OnnxScorer": "scoring",
    "sketch_categorical": "drift",
    "sketch_numeric": "drift",
    "InputSpec": "manifest",
    "Outputs": "manifest",
    "TensorType": "manifest",
    "Parity": "manifest",
    "MANIFEST_FILE": "manifest",
    "MODEL_FILE": "manifest",
    "SIGNATURE_FILE": "manifest",
    "CategoricalSketch": "manifest",
    "NumericSketch": "manifest",
    "ReferenceSketches": "manifest",
}
__all__ = [
    "BufferError",
    "BufferFull",
    "BufferStats",
    "Bundle",
    "BundleRefused",
    "CategoricalSketch",
    "DriftReport",
    "EDGE_NAMESPACE",
    "EdgeError",
    "EdgeModel",
    "FORMAT_VERSION",
    "FeatureDrift",
    "InputSpec",
    "InvalidRows",
    "LoopbackServer",
    "MANIFEST_FILE",
    "MAX_ROWS_PER_REQUEST",
    "MODEL_FILE",
    "Manifest",
    "NumericSketch",
    "OnFull",
    "OnnxScorer",
    "Outputs",
    "Parity",
    "Prediction",
    "ReferenceSketches",
    "RefusedPrediction",
    "SIGNATURE_FILE",
    "SyncRefused",
    "SyncResult",
    "TELEMETRY_PATH",
    "TelemetryBuffer",
    "TensorType",
    "Transport",
    "load_bundle",
    "parse_public_key",
    "request_id",
    "sketch_categorical",
    "sketch_numeric",
    "urllib_transport",
    "verify",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(f"matchday_edge.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'matchday_edge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
