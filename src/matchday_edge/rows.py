"""How a buffered prediction is stored, and how it becomes the protocol's JSON again at sync.

Inputs are kept as packed float64 when every input is a number (a JSON text of 25 floats cost more than
the model call itself), as JSON otherwise; probabilities as packed float64; times as epoch seconds. The
work of making JSON moves from every prediction to the sync, which does it once per batch. Each row
names its model and version; the buffer keeps those versions' input columns beside the rows.

>>> columns = [("a", "float"), ("n", "integer")]
>>> data, encoding = encode_inputs([[1.5, 3.0]], columns)[0]
>>> encoding, decode_inputs(data, encoding, columns)
('f8', {'a': 1.5, 'n': 3})
>>> decode_inputs(*encode_inputs([[None, 2]], columns)[0], columns)
{'a': None, 'n': 2}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from matchday_edge.scoring import plain

Columns = list[tuple[str, str]]  # (input name, signature type), in the model's order
NUMERIC = ("integer", "float", "boolean")


def encode_inputs(values: Sequence[Sequence[Any]] | np.ndarray, columns: Columns) -> list[tuple[bytes, str]]:
    """Each row's inputs as (bytes, encoding): ``f8`` packed float64 when every column is a number, else ``json``."""
    if all(kind in NUMERIC for _, kind in columns):
        try:
            matrix = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            matrix = None
        if matrix is not None and matrix.ndim == 2:
            return [(row.tobytes(), "f8") for row in matrix]
    return [
        (json.dumps({name: plain(v, kind) for (name, kind), v in zip(columns, row)}).encode(), "json") for row in values
    ]


def decode_inputs(data: bytes, encoding: str, columns: Columns) -> dict[str, Any]:
    if encoding == "f8":
        return {name: plain(v, kind) for (name, kind), v in zip(columns, np.frombuffer(data, np.float64).tolist())}
    decoded: dict[str, Any] = json.loads(data)
    return decoded


def encode_probabilities(matrix: np.ndarray | None, rows: int) -> list[bytes | None]:
    if matrix is None:
        return [None] * rows
    packed = np.ascontiguousarray(matrix, dtype=np.float64)
    return [row.tobytes() for row in packed]


def decode_probabilities(data: bytes | None) -> list[float] | None:
    return None if data is None else np.frombuffer(data, np.float64).tolist()


def iso(at: float) -> str:
    """Epoch seconds as the protocol's UTC ISO time."""
    return datetime.fromtimestamp(at, UTC).isoformat()
