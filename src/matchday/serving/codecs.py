"""Request bodies to columns, and answers back: matchday's JSON (rows or columns) and V2 tensors."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from matchday.registry import Signature
from matchday.serving.errors import BadRequest


@dataclass
class DecodedRequest:
    columns: dict[str, list[Any]]
    rows: int
    entity_ids: list[str | None]
    path: str  # field-path template with {row} and {column}


def decode_v1(body: Any, signature: Signature) -> DecodedRequest:
    """``{"instances": [{...}, ...]}`` or ``{"columns": [...], "data": [[...], ...]}``; ``id`` is the entity key."""
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object with "instances" or "columns" and "data"')
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not all(isinstance(i, dict) for i in instances):
            raise BadRequest('"instances" must be a list of objects, one per row')
        features = set(signature.input_names)
        entity = "id" not in features
        ids = [_entity(i.get("id")) if entity else None for i in instances]
        if "ids" in body:
            ids = _ids(body["ids"], len(instances))
        names = signature.input_names
        if len(instances) == 1:  # most requests: one row, so one list per column without a loop each
            row = instances[0]
            columns = {name: [row[name]] for name in names if name in row}  # absent: reported as instances[*].name
        else:
            columns = {name: [row.get(name, MISSING) for row in instances] for name in names}
            for name in [n for n, values in columns.items() if values and all(v is MISSING for v in values)]:
                del columns[name]  # absent everywhere: reported once, as instances[*].name
        return DecodedRequest(columns, len(instances), ids, "instances[{row}].{column}")
    if "columns" in body or "data" in body:
        given, data = body.get("columns"), body.get("data")
        if not isinstance(given, list) or not all(isinstance(n, str) for n in given):
            raise BadRequest('"columns" must be a list of column names')
        if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
            raise BadRequest('"data" must be a list of rows, each a list of values')
        bad = [i for i, r in enumerate(data) if len(r) != len(given)]
        if bad:
            raise BadRequest(f"data rows {bad[:10]} do not have {len(given)} values (one per column)")
        columns = {name: [row[j] for row in data] for j, name in enumerate(given)}
        ids = _ids(body["ids"], len(data)) if "ids" in body else [None] * len(data)
        return DecodedRequest(columns, len(data), ids, "data[{row}].{column}")
    raise BadRequest('the body needs "instances" (a list of objects) or "columns" and "data"')


class _Missing:
    """A key absent from one instance (unlike null, which is a value)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


MAX_ENTITY_ID = 200  # the prediction log's column width


def _entity(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise BadRequest('"id" must be a string or a number')
    text = str(value)
    if "\x00" in text:
        raise BadRequest('"id" contains a NUL character')
    if len(text) > MAX_ENTITY_ID:
        raise BadRequest(f'"id" is {len(text)} characters long; entity keys have at most {MAX_ENTITY_ID}')
    return text


def _ids(values: Any, rows: int) -> list[str | None]:
    if not isinstance(values, list) or len(values) != rows:
        raise BadRequest(f'"ids" must be a list with one entity key per row ({rows})')
    return [_entity(v) for v in values]


# -- Open Inference Protocol V2 ----------------------------------------------------------------
V2Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"
]
V2_DATATYPES = frozenset(get_args(V2Datatype))  # one list: the OpenAPI document's (bodies.py) and the check's
_NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
_SIGNATURE_DATATYPE = {"integer": "INT64", "float": "FP64", "boolean": "BOOL", "string": "BYTES"}


def v2_datatype(kind: str) -> str:
    return _SIGNATURE_DATATYPE[kind]


def split_binary_body(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON part and the binary tail of a request using the binary tensor extension."""
    if header_length is None:
        return raw, b""
    if not (header_length.isascii() and header_length.isdigit()):
        raise BadRequest("Inference-Header-Content-Length must be a non-negative integer")
    n = int(header_length)
    if n > len(raw):
        raise BadRequest("Inference-Header-Content-Length is larger than the body")
    return raw[:n], raw[n:]


def check_v2_body(body: Any) -> None:
    """Every field of a V2 inference request has the type the protocol gives it, or a 400 names it."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise BadRequest('the body must be a JSON object with a non-empty "inputs" list')
    if body.get("id") is not None and not isinstance(body["id"], str):
        raise BadRequest('"id" must be a string')
    _check_parameters(body, '"parameters"')
    for i, spec in enumerate(body["inputs"]):
        if not isinstance(spec, dict):
            raise BadRequest(f"inputs[{i}] must be an object")
        name, shape, datatype = spec.get("name"), spec.get("shape"), spec.get("datatype")
        if not isinstance(name, str):
            raise BadRequest(f"inputs[{i}].name must be a string")
        if (
            not isinstance(shape, list)
            or not 1 <= len(shape) <= 2
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise BadRequest(f"inputs[{i}].shape must be a list of one or two non-negative integers")
        if not isinstance(datatype, str) or datatype not in V2_DATATYPES:
            raise BadRequest(
                f"inputs[{i}].datatype {datatype!r} is not a V2 datatype (one of {', '.join(sorted(V2_DATATYPES))})"
            )
        _check_parameters(spec, f"inputs[{i}].parameters")
    outputs = body.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
        ):
            raise BadRequest('"outputs" must be a list of objects with a string "name"')
        for i, output in enumerate(outputs):
            _check_parameters(output, f"outputs[{i}].parameters")


def _check_parameters(holder: dict[str, Any], where: str) -> None:
    if holder.get("parameters") is not None and not isinstance(holder["parameters"], dict):
        raise BadRequest(f"{where} must be an object")


def decode_v2(body: Any, binary: bytes, signature: Signature) -> DecodedRequest:
    """V2 ``inputs`` to columns: one tensor per column, or one [N, k] tensor in signature order."""
    check_v2_body(body)
    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for i, spec in enumerate(body["inputs"]):
        name, shape, datatype = spec["name"], spec["shape"], spec["datatype"]
        size = math.prod(shape)  # Python integers: no wrap-around for absurd shapes
        parameters = spec.get("parameters") or {}
        if "binary_data_size" in parameters:
            length = parameters["binary_data_size"]
            if not isinstance(length, int) or isinstance(length, bool) or length < 0 or offset + length > len(binary):
                raise BadRequest(f"inputs[{i}].binary_data_size runs past the end of the body")
            values = _from_binary(binary[offset : offset + length], datatype, size, i)
            offset += length
        else:
            values = _from_json(spec.get("data"), datatype, size, i)
        tensors[name] = values.reshape(shape)
    names = signature.input_names
    if all(n in tensors for n in names):
        columns: dict[str, list[Any]] = {}
        rows = None
        for n in names:
            t = tensors[n]
            if t.ndim == 2 and t.shape[1] != 1:
                raise BadRequest(f"input {n!r} has shape {list(t.shape)}; a column tensor is [N] or [N, 1]")
            columns[n] = t.reshape(-1).tolist()
            if rows is not None and len(columns[n]) != rows:
                raise BadRequest("input tensors have different numbers of rows")
            rows = len(columns[n])
        return DecodedRequest(columns, rows or 0, [None] * (rows or 0), "inputs[{column}][{row}]")
    if len(tensors) == 1:
        ((name, t),) = tensors.items()
        if t.ndim != 2 or t.shape[1] != len(names):
            raise BadRequest(
                f"input {name!r} has shape {list(t.shape)}; expected one tensor per column "
                f"({', '.join(names)}) or one [N, {len(names)}] tensor in that order"
            )
        columns = {n: t[:, j].tolist() for j, n in enumerate(names)}
        escaped = name.replace("{", "{{").replace("}", "}}")  # the path is a format template
        return DecodedRequest(columns, t.shape[0], [None] * t.shape[0], escaped + "[{row}][{column}]")
    missing = [n for n in names if n not in tensors]
    raise BadRequest(f"inputs do not match the model: missing {', '.join(missing)}")


def _from_json(data: Any, datatype: str, size: int, i: int) -> np.ndarray:
    if not isinstance(data, list):
        raise BadRequest(f"inputs[{i}].data must be a list of values (or send the tensor as binary data)")
    flat = _flatten(data)
    if len(flat) != size:
        raise BadRequest(f"inputs[{i}] has {len(flat)} values but its shape holds {size}")
    if datatype == "BYTES":
        return np.array([v if isinstance(v, str) else json.dumps(v) for v in flat], dtype=object)
    dtype = np.dtype(_NUMPY[datatype])
    wrong = next((v for v in flat if not _fits(v, dtype)), _NONE)
    if wrong is not _NONE:
        raise BadRequest(f"inputs[{i}] has values that are not {datatype}: {wrong!r}")
    try:
        return np.array(flat, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRequest(f"inputs[{i}] has values that are not {datatype}: {exc}") from exc


_NONE = object()


def _fits(value: Any, dtype: np.dtype[Any]) -> bool:
    """Whether a JSON value is exactly representable in a V2 datatype (no silent casts)."""
    if dtype.kind == "b":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if dtype.kind in "iu":
        if not isinstance(value, int):
            return False
        info = np.iinfo(dtype)
        return int(info.min) <= value <= int(info.max)
    # 1e39 is no FP32 (it would become infinity); infinity and NaN themselves are judged by validation
    return not math.isfinite(value) or abs(value) <= float(np.finfo(dtype).max)


def _from_binary(raw: bytes, datatype: str, size: int, i: int) -> np.ndarray:
    if datatype == "BYTES":
        out, pos = [], 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise BadRequest(f"inputs[{i}] has a truncated BYTES element")
            (n,) = struct.unpack_from("<I", raw, pos)
            out.append(raw[pos + 4 : pos + 4 + n].decode("utf-8", errors="replace"))
            pos += 4 + n
        if len(out) != size:
            raise BadRequest(f"inputs[{i}] has {len(out)} elements but its shape holds {size}")
        return np.array(out, dtype=object)
    dtype = np.dtype(_NUMPY[datatype]).newbyteorder("<")
    if len(raw) != size * dtype.itemsize:
        raise BadRequest(f"inputs[{i}] has {len(raw)} bytes; its shape and datatype need {size * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype)


def _flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def v2_tensor(name: str, values: np.ndarray) -> dict[str, Any]:
    values = np.asarray(values)
    data: list[Any]
    if values.dtype.kind in "OUS":
        datatype, data = "BYTES", [str(v) for v in values.reshape(-1)]
    elif values.dtype.kind == "b":
        datatype, data = "BOOL", values.reshape(-1).tolist()
    elif values.dtype.kind in "iu":
        datatype, data = "INT64", values.reshape(-1).astype(np.int64).tolist()
    else:
        datatype, data = "FP64", values.reshape(-1).astype(np.float64).tolist()
    return {"name": name, "shape": list(values.shape), "datatype": datatype, "data": data}
