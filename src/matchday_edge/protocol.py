"""What the device and the server agree on besides the manifest: how a buffered row is named.

A prediction's request id in the server's log is derived from the device, the buffer's epoch and the
row's sequence number, so both sides compute it, a replayed row lands on the same id (and is skipped),
and a wiped buffer that starts its sequence again (under a new epoch) never collides with the old rows.

>>> request_id("d1", "0" * 32, 17)
'27aa0309-783b-5e9e-9c2c-c28bb5c0b54e'
"""

from __future__ import annotations

import uuid

EDGE_NAMESPACE = uuid.UUID("6f0a3c1e-3d3b-5d0e-9a57-6d61746368e1")
TELEMETRY_PATH = "/v1/edge/devices/{device}/telemetry"
MAX_ROWS_PER_REQUEST = 1000  # per kind (predictions, labels): the server refuses more in one request


def request_id(device: str, epoch: str, seq: int) -> str:
    """The log's request id of prediction ``seq`` of ``device``'s buffer of ``epoch``."""
    return str(uuid.uuid5(EDGE_NAMESPACE, f"{device}/{epoch}/{seq}"))
