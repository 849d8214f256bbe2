"""ONNX models, run by onnxruntime.

Two input layouts are understood: one 2-D tensor whose columns are the features in order, or one
tensor per feature named after its column (what skl2onnx makes of a DataFrame pipeline).

An ONNX graph is data, not code: onnxruntime runs only its own operators and loads no custom-op
library unless asked to (matchday never does), so no trust flag is needed. What a file *can* do is
name a tensor whose bytes live in an external file (``/etc/passwd``, ``../x``): matchday stores one
self-contained file per version, so such a model is refused before onnxruntime sees it (`_external_data`),
and so is a file that does not parse as a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from matchday.registry.errors import InvalidInput, InvalidModel
from matchday.registry.flavors.base import Flavor, Packed, Predictor, as_matrix
from matchday.registry.tabular import to_numpy

_NUMPY_OF: dict[str, npt.DTypeLike] = {  # ONNX tensor type -> the numpy dtype fed to it
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": object,
}


class OnnxPredictor(Predictor):
    flavor = "onnx"

    def __init__(self, data: bytes) -> None:
        super().__init__()
        import onnxruntime as ort

        external = _external_data(data)
        if external:
            raise InvalidModel(
                "the ONNX model keeps tensor data in external files, which matchday does not read: "
                "save it as one file (onnx.save_model(model, path, save_as_external_data=False))",
                [f"tensor data in {location!r}" for location in external],
            )
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise InvalidModel(f"not a valid ONNX model: {exc}") from exc
        self.inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        self.label_output = outputs[0].name
        self.proba_output = next(
            (o.name for o in outputs[1:] if "prob" in o.name.lower() or o.type.startswith("seq(map")), None
        )
        self._zipmap_classes: list[Any] | None = None

    @property
    def has_proba(self) -> bool:
        return self.proba_output is not None

    def declared_inputs(self) -> list[str] | int | None:
        if len(self.inputs) == 1:
            shape = self.inputs[0].shape
            if len(shape) == 2 and isinstance(shape[1], int):
                return shape[1]
            return None
        return [i.name for i in self.inputs]

    def _native_classes(self) -> list[Any] | None:
        return self._zipmap_classes

    def _feed(self, table: pa.Table) -> dict[str, np.ndarray]:
        names = [i.name for i in self.inputs]
        per_column = all(n in table.column_names for n in names) and not (len(names) == 1 and table.num_columns > 1)
        if not per_column:
            if len(self.inputs) != 1:
                missing = [n for n in names if n not in table.column_names]
                raise InvalidInput(
                    "the ONNX model needs input columns it was not given", [f"{n}: missing" for n in missing]
                )
            spec = self.inputs[0]
            return {spec.name: as_matrix(table).astype(_NUMPY_OF.get(spec.type, np.float32))}
        feed = {}
        for spec in self.inputs:
            column = to_numpy(table.column(spec.name)).astype(_NUMPY_OF.get(spec.type, np.float32))
            feed[spec.name] = column.reshape(-1, 1) if len(spec.shape) == 2 else column
        return feed

    def _run(self, table: pa.Table, outputs: list[str]) -> list[Any]:
        try:
            results: list[Any] = self.session.run(outputs, self._feed(table))
            return results
        except InvalidInput:
            raise
        except Exception as exc:
            raise InvalidInput(f"onnxruntime refused the input: {exc}") from exc

    def _predict(self, table: pa.Table) -> Any:
        (labels,) = self._run(table, [self.label_output])
        labels = np.asarray(labels)
        return labels.ravel() if labels.ndim == 2 and labels.shape[1] == 1 else labels

    def _predict_proba(self, table: pa.Table) -> Any:
        (proba,) = self._run(table, [self.proba_output])  # type: ignore[list-item]
        if isinstance(proba, list):  # ZipMap: one {class: probability} dict per row
            classes = list(proba[0].keys()) if proba else (self._zipmap_classes or [])
            self._zipmap_classes = classes
            return np.array([[row[c] for c in classes] for row in proba], dtype=np.float64)
        return np.asarray(proba, dtype=np.float64)


class OnnxFlavor(Flavor):
    name = "onnx"

    def pack(self, model: Any, *, trust_pickle: bool = False) -> Packed | None:
        if isinstance(model, (str, Path)):
            path = Path(model)
            if path.suffix.lower() != ".onnx" or not path.is_file():
                return None
            data = path.read_bytes()
        elif type(model).__module__.startswith("onnx") and hasattr(model, "SerializeToString"):
            data = model.SerializeToString()
        else:
            return None
        return Packed("onnx", data, OnnxPredictor(data))

    def load(self, data: bytes, options: dict[str, Any], cache_dir: Path) -> Predictor:
        return OnnxPredictor(data)


# The protobuf fields on the way to every TensorProto of a ModelProto (onnx.proto: graphs, nodes'
# attributes, subgraphs, sparse tensors, functions, training graphs), by message and field number.
_PATHS: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "function": {7: "node", 11: "attribute"},
    "training": {1: "graph", 2: "graph"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {13: "entry"},  # external_data: StringStringEntryProto key/value pairs
    "entry": {},
}
_TENSOR_DATA_LOCATION, _EXTERNAL = 14, 1


def _external_data(data: bytes) -> list[str]:
    """The external-data locations named by the serialized model's tensors (empty if none).

    Reads the protobuf wire format directly, so it needs no ``onnx`` package; bytes that are not a
    well-formed message raise `InvalidModel`.
    """
    locations: list[str] = []
    external = False
    stack: list[tuple[str, memoryview]] = [("model", memoryview(data))]
    while stack:
        kind, buf = stack.pop()
        pair: dict[int, bytes] = {}
        for number, _wire, value in _fields(buf):
            if isinstance(value, int):
                external |= kind == "tensor" and number == _TENSOR_DATA_LOCATION and value == _EXTERNAL
            elif kind == "entry":
                pair[number] = bytes(value)
            elif number in _PATHS[kind]:
                external |= kind == "tensor"  # any external_data entry sends onnxruntime to a file
                stack.append((_PATHS[kind][number], value))
        if pair.get(1) == b"location":
            locations.append(pair.get(2, b"").decode("utf-8", "replace"))
    return locations or (["(no location given)"] if external else [])


def _fields(buf: memoryview) -> list[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of one protobuf message; length-delimited values as views."""
    out: list[tuple[int, int, int | memoryview]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, wire, value))
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise InvalidModel("not a valid ONNX model: a field runs past the end of the file")
            out.append((number, wire, buf[pos : pos + size]))
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise InvalidModel(f"not a valid ONNX model: unknown protobuf wire type {wire}")
    if pos != end:
        raise InvalidModel("not a valid ONNX model: truncated")
    return out


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise InvalidModel("not a valid ONNX model: truncated or malformed")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
