"""Edge deployment, the server's side: a registered version exported as a signed ONNX bundle (after a
parity gate) for `matchday_edge` to run on devices, and the telemetry those devices sync home (registered
devices, each with its own token; their rows landing in the prediction log as ``source: edge``)."""

from matchday.edge.errors import EdgeError, ExportError, ParityFailed, SigningKeyError
from matchday.edge.export import DEFAULT_TOLERANCE, ExportedBundle, default_deployment, export_bundle
from matchday.edge.signing import BundleSigner
from matchday.edge.telemetry import TELEMETRY_PATH, EdgeTelemetry, TelemetryAck, UnmatchedLabel, device_json
from matchday.edge.telemetry_body import EDGE_NAMESPACE, MAX_CLOCK_SKEW, MAX_ROWS, request_id
from matchday.edge.telemetry_errors import (
    DeviceNotBound,
    InvalidDevice,
    InvalidTelemetry,
    TelemetryError,
    TooMuchTelemetry,
    WrongDeployment,
)

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
