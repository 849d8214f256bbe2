"""matchday_edge: a matchday model on a device. Load a signed bundle, predict offline, keep every
prediction and label in a bounded on-device buffer, and sync it home when the server is reachable.

Imports only onnxruntime, NumPy and the standard library (a test holds this).

>>> import matchday_edge
>>> "EdgeModel" in matchday_edge.__all__
True
"""

from matchday_edge.buffer import BufferStats, OnFull, RefusedPrediction, TelemetryBuffer
from matchday_edge.bundle import Bundle, load_bundle
from matchday_edge.drift import DriftReport, FeatureDrift
from matchday_edge.ed25519 import parse_public_key, verify
from matchday_edge.errors import BufferError, BufferFull, BundleRefused, EdgeError, InvalidRows, SyncRefused
from matchday_edge.loopback import LoopbackServer
from matchday_edge.manifest import FORMAT_VERSION, Manifest
from matchday_edge.model import EdgeModel, Prediction
from matchday_edge.protocol import EDGE_NAMESPACE, request_id
from matchday_edge.sync import SyncResult, Transport, urllib_transport

__all__ = [
    "EDGE_NAMESPACE",
    "FORMAT_VERSION",
    "BufferError",
    "BufferFull",
    "BufferStats",
    "Bundle",
    "BundleRefused",
    "DriftReport",
    "EdgeError",
    "EdgeModel",
    "FeatureDrift",
    "InvalidRows",
    "LoopbackServer",
    "Manifest",
    "OnFull",
    "Prediction",
    "RefusedPrediction",
    "SyncRefused",
    "SyncResult",
    "TelemetryBuffer",
    "Transport",
    "load_bundle",
    "parse_public_key",
    "request_id",
    "urllib_transport",
    "verify",
]
