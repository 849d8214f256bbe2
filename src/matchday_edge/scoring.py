"""Rows in, labels and probabilities out: the bundle's ONNX graph run by onnxruntime.

The same code scores on the device and in the server's parity gate (`matchday.edge.parity`), so what
the gate checked is what the device runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from matchday_edge.errors import BundleRefused, InvalidRows
from matchday_edge.manifest import InputSpec, Manifest

_DTYPES: dict[str, Any] = {"double": np.float64, "float": np.float32, "int64": np.int64, "string": object}
Rows = Sequence[Mapping[str, Any]] | np.ndarray | Sequence[Sequence[Any]]


@dataclass(frozen=True)
class Scores:
    """One label (or a regressor's value) per row, and the class probabilities in the manifest's class order."""

    labels: np.ndarray
    probabilities: np.ndarray | None


class OnnxScorer:
    """A bundle's graph in an onnxruntime session, fed the way its manifest says (one matrix or one tensor per column)."""

    def __init__(self, model_bytes: bytes, manifest: Manifest, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads  # one row at a time: more threads only wait on each other
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise BundleRefused(f"onnxruntime cannot load the bundle's model: {exc}") from exc
        self.manifest = manifest
        self.inputs: list[InputSpec] = list(manifest["inputs"])
        self.names = [spec["name"] for spec in self.inputs]
        self.matrix_input = manifest["matrix_input"] if manifest["layout"] == "matrix" else None
        self.matrix_dtype = _DTYPES[self.inputs[0]["tensor"]] if self.inputs else np.float64
        outputs = manifest["outputs"]
        self.outputs = [outputs["label"]] + ([outputs["probabilities"]] if outputs["probabilities"] else [])
        self.classes = manifest["classes"]

    def feed(self, rows: Rows) -> dict[str, np.ndarray]:
        """The graph's input tensors for ``rows``: a list of dicts by column name, or a 2-D array in input order."""
        return self.prepare(rows)[1]

    def prepare(self, rows: Rows) -> tuple[list[list[Any]], dict[str, np.ndarray]]:
        """The rows' values in input order as given (what the telemetry logs), and the graph's input tensors."""
        values, matrix = self._matrix(rows)
        if self.matrix_input is not None:
            return values, {self.matrix_input: matrix}
        feed = {}
        for i, spec in enumerate(self.inputs):
            column = matrix[:, i : i + 1]
            dtype = _DTYPES[spec["tensor"]]
            try:
                feed[spec["name"]] = (
                    np.array([[str(v)] for v in column[:, 0]], dtype=object)
                    if dtype is object
                    else column.astype(dtype)
                )
            except (TypeError, ValueError) as exc:
                raise InvalidRows(f"column {spec['name']!r} is not {spec['type']}: {exc}") from exc
        return values, feed

    def score(self, rows: Rows) -> Scores:
        return self.run(self.feed(rows))

    def run(self, feed: dict[str, np.ndarray]) -> Scores:
        results = self.session.run(self.outputs, feed)
        labels = np.asarray(results[0])
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels.ravel()
        probabilities = None
        if len(results) > 1:
            probabilities = self._probabilities(results[1])
        return Scores(labels, probabilities)

    def _probabilities(self, raw: Any) -> np.ndarray:
        if isinstance(raw, list):  # a ZipMap output: one {class: probability} dict per row
            classes = self.classes or (list(raw[0]) if raw else [])
            return np.array([[_by_class(row, c) for c in classes] for row in raw], dtype=np.float64)
        return np.asarray(raw, dtype=np.float64)

    def _matrix(self, rows: Rows) -> tuple[list[list[Any]], np.ndarray]:
        """The rows as one 2-D array, columns in input order: the matrix dtype when the layout is one
        matrix, else objects (each column is cast to its own tensor's type after)."""
        dtype = self.matrix_dtype if self.matrix_input is not None else object
        if isinstance(rows, (Mapping, str, bytes)):
            raise InvalidRows(
                f"give the rows as a list (of dicts, one per row) or a 2-D array, not a {type(rows).__name__}"
            )
        if isinstance(rows, np.ndarray) or (len(rows) and not isinstance(rows[0], Mapping)):
            matrix = self._from_array(rows, dtype)
            return (rows.tolist() if isinstance(rows, np.ndarray) else [list(r) for r in rows]), matrix
        table = []
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise InvalidRows(f"row {i} is a {type(row).__name__}; give every row as a dict, or a 2-D array")
            try:
                table.append([row[name] for name in self.names])
            except KeyError:
                missing = [n for n in self.names if n not in row]
                raise InvalidRows(
                    f"row {i} is missing inputs the model needs", [f"{n}: missing" for n in missing]
                ) from None
        try:
            return table, np.array(table, dtype=dtype).reshape(len(table), len(self.names))
        except (TypeError, ValueError) as exc:
            raise InvalidRows(f"the rows do not fit the model's {_types(self.inputs)} inputs: {exc}") from exc

    def _from_array(self, rows: Any, dtype: Any) -> np.ndarray:
        try:
            matrix = np.asarray(rows, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise InvalidRows(f"the rows do not fit the model's {_types(self.inputs)} inputs: {exc}") from exc
        if matrix.ndim == 1 and len(matrix) == 0:
            return matrix.reshape(0, len(self.names))
        if matrix.ndim != 2 or matrix.shape[1] != len(self.names):
            raise InvalidRows(
                f"a 2-D array of {len(self.names)} columns ({', '.join(self.names)}) was expected, "
                f"not one of shape {matrix.shape}"
            )
        return matrix


def plain(value: Any, kind: str) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "boolean" and isinstance(value, (int, float)):
        return bool(value)
    if kind == "string" and not isinstance(value, str):
        return str(value)
    return value


def _by_class(row: Mapping[Any, float], cls: Any) -> float:
    if cls in row:
        return float(row[cls])
    return float(row[str(cls)])


def _types(inputs: list[InputSpec]) -> str:
    kinds = sorted({spec["type"] for spec in inputs})
    return "/".join(kinds)
