"""Edge deployment, the server's side: a registered version exported as a signed ONNX bundle (after a
parity gate) for `matchday_edge` to run on devices, and the telemetry those devices sync home (registered
devices, each with its own token; their rows landing in the prediction log as ``source: edge``).

The export's names (`export_bundle`, ...) load on first use: the server imports this part for the
telemetry route, and exporting needs onnxruntime and skl2onnx, which serving never does. The protocol's
constants (`EDGE_NAMESPACE`, `request_id`, `TELEMETRY_PATH`) are `matchday_edge.protocol`'s, one copy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from matchday.edge.errors import EdgeError, ExportError, ParityFailed, SigningKeyError
from matchday.edge.signing import BundleSigner
from matchday.edge.telemetry import EdgeTelemetry, TelemetryAck, UnmatchedLabel, device_json
from matchday.edge.telemetry_body import MAX_CLOCK_SKEW, MAX_ROWS
from matchday.edge.telemetry_errors import (
    DeviceNotBound,
    InvalidDevice,
    InvalidTelemetry,
    TelemetryError,
    TooMuchTelemetry,
    WrongDeployment,
)
from matchday_edge import EDGE_NAMESPACE, TELEMETRY_PATH, request_id

if TYPE_CHECKING:
    from matchday.edge.export import DEFAULT_TOLERANCE, ExportedBundle, default_deployment, export_bundle

_LAZY = {
    name: "matchday.edge.export"
    for name in ("DEFAULT_TOLERANCE", "ExportedBundle", "default_deployment", "export_bundle")
}

__all__ = [
    "EDGE_NAMESPACE",
    "MAX_CLOCK_SKEW",
    "MAX_ROWS",
    "TELEMETRY_PATH",
    "DeviceNotBound",
    "EdgeTelemetry",
    "InvalidDevice",
    "InvalidTelemetry",
    "TelemetryAck",
    "TelemetryError",
    "TooMuchTelemetry",
    "UnmatchedLabel",
    "WrongDeployment",
    "device_json",
    "request_id",
    "DEFAULT_TOLERANCE",
    "BundleSigner",
    "EdgeError",
    "ExportError",
    "ExportedBundle",
    "ParityFailed",
    "SigningKeyError",
    "default_deployment",
    "export_bundle",
]


def __getattr__(name: str) -> Any:
    """The export's names on first use (it imports onnxruntime and, when converting, skl2onnx)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'matchday.edge' has no attribute {name!r}")
