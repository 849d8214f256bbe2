"""Request decoding and validation decide what a model sees: coercions, field paths and V2 tensors must be exact."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
import pytest

from matchday.registry import ColumnSpec, OutputSpec, Signature
from matchday.serving.codecs import (
    MISSING,
    V2_DATATYPES,
    decode_v1,
    decode_v2,
    split_binary_body,
    v2_datatype,
    v2_tensor,
)
from matchday.serving.errors import BadRequest, InvalidRequest
from matchday.serving.validation import ValidatedBatch, validate_columns

SIG = Signature(
    inputs=[
        ColumnSpec(name="amount", type="float", min=0.0, max=100.0),
        ColumnSpec(name="hour", type="integer", min=0.0, max=23.0),
        ColumnSpec(name="merchant", type="string", categories=["food", "fuel", "travel"]),
        ColumnSpec(name="online", type="boolean", categories=[False, True]),
    ],
    output=OutputSpec(task="classification", classes=[0, 1]),
)
NAMES = SIG.input_names
PATH = "instances[{row}].{column}"


def one(kind: str, nullable: bool = False) -> Signature:
    return Signature(
        inputs=[ColumnSpec(name="v", type=kind, nullable=nullable)],  # type: ignore[arg-type]
        output=OutputSpec(task="regression"),
    )


def coerced(kind: str, raw: Any, nullable: bool = False) -> Any:
    batch = validate_columns({"v": [raw]}, 1, one(kind, nullable), PATH)
    assert batch.records == [{"v": batch.table.column("v")[0].as_py()}]
    return batch.table.column("v")[0].as_py()


def problems(
    columns: dict[str, list[Any]], signature: Signature = SIG, rows: int = 1, path: str = PATH
) -> list[dict[str, str]]:
    with pytest.raises(InvalidRequest) as info:
        validate_columns(columns, rows, signature, path)
    assert len(info.value.details) == len(info.value.problems)
    return info.value.problems


def refused(kind: str, raw: Any, nullable: bool = False) -> str:
    (p,) = problems({"v": [raw]}, one(kind, nullable))
    assert p["field"] == "instances[0].v"
    return p["problem"]


# -- coercion, one type at a time -----------------------------------------------------------------
ACCEPTED = [
    ("integer", 3, 3),
    ("integer", "3", 3),
    ("integer", " 7 ", 7),
    ("integer", 2.0, 2),
    ("integer", "2.0", 2),
    ("integer", -4, -4),
    ("integer", "1e3", 1000),
    ("float", 1, 1.0),
    ("float", 2.5, 2.5),
    ("float", "2.5", 2.5),
    ("float", " -1e3 ", -1000.0),
    ("float", "7", 7.0),
    ("boolean", True, True),
    ("boolean", False, False),
    ("boolean", "true", True),
    ("boolean", "false", False),
    ("boolean", " TRUE ", True),
    ("boolean", "False", False),
    ("boolean", "yes", True),
    ("boolean", "no", False),
    ("boolean", 1, True),
    ("boolean", 0, False),
    ("boolean", "1", True),
    ("boolean", "0", False),
    ("string", "food", "food"),
    ("string", "", ""),
    ("string", 5, "5"),
    ("string", 2.5, "2.5"),
]


@pytest.mark.parametrize(("kind", "raw", "expected"), ACCEPTED)
def test_accepted_values_are_coerced_to_the_column_type(kind: str, raw: Any, expected: Any) -> None:
    value = coerced(kind, raw)
    assert value == expected and type(value) is type(expected)


REFUSED = [
    ("integer", "2.5", "expected an integer, got '2.5'"),
    ("integer", 2.5, "expected an integer, got 2.5"),
    ("integer", True, "expected an integer, got a boolean"),
    ("integer", "abc", "expected an integer"),
    ("integer", "", "expected an integer"),
    ("integer", math.inf, "expected an integer"),
    ("integer", "inf", "expected an integer"),
    ("float", True, "expected a number, got a boolean"),
    ("float", False, "expected a number, got a boolean"),
    ("float", "lots", "expected a number, got 'lots'"),
    ("float", math.inf, "infinite"),
    ("float", -math.inf, "infinite"),
    ("float", "inf", "infinite"),
    ("float", "-Infinity", "infinite"),
    ("boolean", 2, "expected a boolean, got 2"),
    ("boolean", "maybe", "expected a boolean"),
    ("boolean", 1.0, "expected a boolean"),
    ("boolean", "", "expected a boolean"),
    ("string", True, "expected a string, got a boolean"),
]


@pytest.mark.parametrize(("kind", "raw", "message"), REFUSED)
def test_refused_values_name_the_problem(kind: str, raw: Any, message: str) -> None:
    assert message in refused(kind, raw)


@pytest.mark.parametrize("kind", ["integer", "float", "boolean", "string"])
@pytest.mark.parametrize(
    ("raw", "what"),
    [({"a": 1}, "got an object"), ([1, 2], "got an array"), ({}, "got an object"), ([], "got an array")],
)
def test_objects_and_arrays_are_refused_for_every_type(kind: str, raw: Any, what: str) -> None:
    assert what in refused(kind, raw)
    assert what in refused(kind, raw, nullable=True)


@pytest.mark.parametrize("kind", ["integer", "float", "boolean", "string"])
@pytest.mark.parametrize("raw", [None, math.nan])
def test_null_and_nan_are_refused_unless_nullable(kind: str, raw: Any) -> None:
    message = refused(kind, raw)
    assert "not allowed" in message and "missing values" in message
    assert coerced(kind, raw, nullable=True) is None


@pytest.mark.parametrize("kind", ["integer", "float"])
def test_a_nan_string_counts_as_missing_for_numbers(kind: str) -> None:
    assert "NaN is not allowed" in refused(kind, "nan")
    assert coerced(kind, "NaN", nullable=True) is None


def test_inf_is_refused_even_when_nullable() -> None:
    assert "infinite" in refused("float", math.inf, nullable=True)
    assert "expected an integer" in refused("integer", math.inf, nullable=True)


def test_an_absent_key_is_missing_even_when_nullable() -> None:
    assert "missing" in refused("float", MISSING, nullable=True)


def test_typed_table_and_records() -> None:
    batch = validate_columns(
        {
            "amount": ["12.5", 3],
            "hour": ["4", 5.0],
            "merchant": ["food", 7],
            "online": ["yes", 0],
            "ignored": ["x", "y"],
        },
        2,
        SIG,
        PATH,
    )
    assert isinstance(batch, ValidatedBatch)
    assert batch.table.column_names == NAMES
    assert [str(f.type) for f in batch.table.schema] == ["double", "int64", "string", "bool"]
    assert batch.records == [
        {"amount": 12.5, "hour": 4, "merchant": "food", "online": True},
        {"amount": 3.0, "hour": 5, "merchant": "7", "online": False},
    ]


def test_every_problem_is_reported_at_once_with_its_field_path() -> None:
    found = problems({"amount": [1.0, "x", True], "hour": [1, 2, "2.5"], "online": [True, None, "nope"]}, rows=3)
    assert [p["field"] for p in found] == [
        "instances[1].amount",
        "instances[2].amount",
        "instances[2].hour",
        "instances[*].merchant",
        "instances[1].online",
        "instances[2].online",
    ]
    assert all(p["problem"] for p in found)
    with pytest.raises(InvalidRequest) as info:
        validate_columns({"amount": ["x"], "hour": [1], "merchant": ["food"], "online": [True]}, 1, SIG, PATH)
    assert info.value.details == ["instances[0].amount: expected a number, got 'x'"]
    assert "1 invalid value" in str(info.value)


def test_the_path_template_is_the_callers() -> None:
    found = problems({"amount": [1.0, "x"], "hour": [1, 1], "merchant": ["a", "b"], "online": [1, 1]}, rows=2)
    assert found[0]["field"] == "instances[1].amount"
    with pytest.raises(InvalidRequest) as info:
        validate_columns({"hour": [1]}, 1, one("integer"), "inputs[{column}][{row}]")
    assert info.value.problems[0]["field"] == "inputs[v][*]"


# -- quality counts ------------------------------------------------------------------------------
def test_out_of_range_and_unseen_categories_are_scored_and_counted_by_feature() -> None:
    batch = validate_columns(
        {
            "amount": [-1.0, 0.0, 100.0, "100.5", 50.0],
            "hour": [24, 3, 0, 23, -1],
            "merchant": ["food", "crypto", "travel", "crypto", "fuel"],
            "online": [True, False, True, False, True],
        },
        5,
        SIG,
        PATH,
    )
    assert batch.table.num_rows == 5
    assert batch.quality.out_of_range == 4  # bounds are inclusive
    assert batch.quality.unseen_category == 2
    assert batch.quality.by_feature == {"amount": 2, "hour": 2, "merchant": 2}


def test_nulls_and_columns_without_reference_stats_are_not_counted() -> None:
    sig = Signature(
        inputs=[
            ColumnSpec(name="a", type="float", nullable=True, min=0.0, max=1.0),
            ColumnSpec(name="b", type="float"),
            ColumnSpec(name="c", type="string"),
            ColumnSpec(name="d", type="boolean", categories=[True]),
        ],
        output=OutputSpec(task="regression"),
    )
    batch = validate_columns(
        {"a": [None, math.nan], "b": [1e9, -1e9], "c": ["anything", "else"], "d": [True, False]}, 2, sig, PATH
    )
    assert (batch.quality.out_of_range, batch.quality.unseen_category) == (0, 1)
    assert batch.quality.by_feature == {"d": 1}


def test_quality_is_fresh_for_every_request() -> None:
    cols = {"amount": [500.0], "hour": [1], "merchant": ["food"], "online": [True]}
    first = validate_columns(cols, 1, SIG, PATH)
    second = validate_columns(cols, 1, SIG, PATH)
    assert first.quality.by_feature == second.quality.by_feature == {"amount": 1}
    assert first.quality is not second.quality


@pytest.mark.parametrize("raw", [2**63, 2**64 - 1, "1e19", -(2**63) - 1])
def test_an_integer_outside_int64_is_a_field_problem(raw: Any) -> None:
    (p,) = problems({"v": [raw]}, one("integer"))
    assert p["field"] == "instances[0].v"


def test_an_integer_string_keeps_every_digit() -> None:
    assert coerced("integer", "9007199254740993") == 9007199254740993


# -- decode_v1 -----------------------------------------------------------------------------------
ROW = {"amount": 12.5, "hour": 3, "merchant": "travel", "online": False}


def test_v1_instances_take_the_entity_id_from_each_row() -> None:
    body = {"instances": [{**ROW, "id": "tx-1"}, {**ROW, "id": 7, "extra": 1}, ROW]}
    decoded = decode_v1(body, SIG)
    assert decoded.rows == 3
    assert decoded.entity_ids == ["tx-1", "7", None]
    assert list(decoded.columns) == NAMES
    assert decoded.columns["amount"] == [12.5, 12.5, 12.5]
    assert decoded.path == "instances[{row}].{column}"
    batch = validate_columns(decoded.columns, decoded.rows, SIG, decoded.path)
    assert batch.records[0] == ROW


def test_v1_top_level_ids_win_over_row_ids() -> None:
    decoded = decode_v1({"instances": [{**ROW, "id": "x"}, ROW], "ids": ["a", 2]}, SIG)
    assert decoded.entity_ids == ["a", "2"]
    decoded = decode_v1({"instances": [ROW, ROW], "ids": [None, "b"]}, SIG)
    assert decoded.entity_ids == [None, "b"]


def test_v1_id_is_a_feature_when_the_model_has_an_id_input() -> None:
    sig = Signature(
        inputs=[ColumnSpec(name="id", type="integer"), ColumnSpec(name="x", type="float")],
        output=OutputSpec(task="regression"),
    )
    decoded = decode_v1({"instances": [{"id": 4, "x": 1.0}]}, sig)
    assert decoded.entity_ids == [None]
    assert decoded.columns == {"id": [4], "x": [1.0]}


def test_v1_a_key_missing_in_some_rows_is_reported_per_row_and_in_all_rows_once() -> None:
    partial = {k: v for k, v in ROW.items() if k != "hour"}
    decoded = decode_v1({"instances": [ROW, partial, ROW, partial]}, SIG)
    assert decoded.columns["hour"] == [3, MISSING, 3, MISSING]
    found = problems(decoded.columns, rows=decoded.rows)
    assert [(p["field"], p["problem"]) for p in found] == [
        ("instances[1].hour", "missing: the model needs this input"),
        ("instances[3].hour", "missing: the model needs this input"),
    ]

    decoded = decode_v1({"instances": [partial, partial]}, SIG)
    assert "hour" not in decoded.columns
    assert [p["field"] for p in problems(decoded.columns, rows=2)] == ["instances[*].hour"]


def test_v1_null_is_a_value_not_a_missing_key() -> None:
    decoded = decode_v1({"instances": [{**ROW, "hour": None}]}, SIG)
    assert decoded.columns["hour"] == [None]
    (p,) = problems(decoded.columns)
    assert p["field"] == "instances[0].hour" and "null is not allowed" in p["problem"]


def test_v1_columns_format() -> None:
    body = {
        "columns": ["online", "merchant", "hour", "amount"],
        "data": [[True, "food", 1, 2.0], [False, "fuel", "2", "3.5"]],
        "ids": ["e1", 9],
    }
    decoded = decode_v1(body, SIG)
    assert decoded.rows == 2 and decoded.entity_ids == ["e1", "9"]
    assert decoded.path == "data[{row}].{column}"
    batch = validate_columns(decoded.columns, decoded.rows, SIG, decoded.path)
    assert batch.records[1] == {"amount": 3.5, "hour": 2, "merchant": "fuel", "online": False}
    assert decode_v1({"columns": NAMES, "data": [[1.0, 1, "food", True]]}, SIG).entity_ids == [None]

    decoded = decode_v1({"columns": ["amount", "hour", "online"], "data": [[1.0, "x", True]]}, SIG)
    found = problems(decoded.columns, path=decoded.path)
    assert [p["field"] for p in found] == ["data[0].hour", "data[*].merchant"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([ROW], "JSON object"),
        ("text", "JSON object"),
        ({"rows": [ROW]}, '"instances"'),
        ({"instances": ROW}, "list of objects"),
        ({"instances": [ROW, 1]}, "list of objects"),
        ({"instances": [{**ROW, "id": {"a": 1}}]}, '"id" must be a string or a number'),
        ({"instances": [ROW], "ids": ["a", "b"]}, "one entity key per row (1)"),
        ({"instances": [ROW], "ids": "a"}, "one entity key per row"),
        ({"instances": [ROW], "ids": [["a"]]}, '"id" must be'),
        ({"columns": "amount", "data": [[1.0]]}, '"columns" must be a list'),
        ({"columns": ["amount", 3], "data": [[1.0, 2]]}, '"columns" must be a list'),
        ({"data": [[1.0]]}, '"columns" must be a list'),
        ({"columns": ["amount"]}, '"data" must be a list of rows'),
        ({"columns": ["amount"], "data": [1.0]}, '"data" must be a list of rows'),
        (
            {"columns": ["amount", "hour"], "data": [[1.0, 2], [1.0], [1, 2, 3]]},
            "data rows [1, 2] do not have 2 values",
        ),
        ({"columns": ["amount"], "data": [[1.0]], "ids": []}, "one entity key per row (1)"),
    ],
)
def test_v1_malformed_bodies_are_bad_requests(body: Any, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_v1(body, SIG)
    assert message in str(info.value)


# -- decode_v2 -----------------------------------------------------------------------------------
def tensor(name: str, datatype: str, data: Any, shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "shape": shape if shape is not None else [len(data)], "datatype": datatype, "data": data}


def test_v2_one_tensor_per_column() -> None:
    body = {
        "inputs": [
            tensor("online", "BOOL", [True, False]),  # order of tensors does not matter
            tensor("amount", "FP64", [[1.5], [2.5]], [2, 1]),
            tensor("hour", "INT32", [3, 4]),
            tensor("merchant", "BYTES", ["food", "fuel"]),
            tensor("unused", "FP32", [0.0]),
        ]
    }
    decoded = decode_v2(body, b"", SIG)
    assert decoded.rows == 2 and decoded.entity_ids == [None, None]
    assert decoded.columns == {
        "amount": [1.5, 2.5],
        "hour": [3, 4],
        "merchant": ["food", "fuel"],
        "online": [True, False],
    }
    assert decoded.path == "inputs[{column}][{row}]"
    batch = validate_columns(decoded.columns, decoded.rows, SIG, decoded.path)
    assert batch.records[0] == {"amount": 1.5, "hour": 3, "merchant": "food", "online": True}


def test_v2_problems_carry_the_tensor_path() -> None:
    body = {
        "inputs": [
            tensor("amount", "FP64", [1.0, math.inf]),
            tensor("hour", "BYTES", ["1", "2.5"]),
            tensor("merchant", "BYTES", ["a", "b"]),
            tensor("online", "BOOL", [True, True]),
        ]
    }
    decoded = decode_v2(body, b"", SIG)
    with pytest.raises(InvalidRequest) as info:
        validate_columns(decoded.columns, decoded.rows, SIG, decoded.path)
    assert [p["field"] for p in info.value.problems] == ["inputs[amount][1]", "inputs[hour][1]"]


def test_v2_one_n_by_k_tensor_in_signature_order() -> None:
    body = {"inputs": [tensor("input", "BYTES", [["12.5", "3", "food", "true"], ["1", "4", "fuel", "false"]], [2, 4])]}
    decoded = decode_v2(body, b"", SIG)
    assert decoded.rows == 2
    assert decoded.columns == {
        "amount": ["12.5", "1"],
        "hour": ["3", "4"],
        "merchant": ["food", "fuel"],
        "online": ["true", "false"],
    }
    assert decoded.path == "input[{row}][{column}]"
    batch = validate_columns(decoded.columns, decoded.rows, SIG, decoded.path)
    assert batch.records[1] == {"amount": 1.0, "hour": 4, "merchant": "fuel", "online": False}

    numeric = Signature(
        inputs=[ColumnSpec(name="a", type="float"), ColumnSpec(name="b", type="integer")],
        output=OutputSpec(task="regression"),
    )
    decoded = decode_v2({"inputs": [tensor("x", "FP32", [0.5, 2.0, 1.25, 3.0], [2, 2])]}, b"", numeric)
    assert decoded.columns == {"a": [0.5, 1.25], "b": [2.0, 3.0]}
    assert validate_columns(decoded.columns, 2, numeric, decoded.path).records == [
        {"a": 0.5, "b": 2},
        {"a": 1.25, "b": 3},
    ]


def test_v2_json_bytes_of_other_json_values_become_their_json_text() -> None:
    sig = one("string")
    decoded = decode_v2({"inputs": [tensor("v", "BYTES", ["a", 5, True, None])]}, b"", sig)
    assert decoded.columns == {"v": ["a", "5", "true", "null"]}


def test_v2_an_empty_tensor_has_no_rows() -> None:
    decoded = decode_v2({"inputs": [tensor("v", "FP64", [], [0])]}, b"", one("float"))
    assert decoded.rows == 0 and decoded.columns == {"v": []}


# The binary tensor extension, built as tritonclient builds it: a JSON header whose inputs name a
# binary_data_size, then each tensor's raw little-endian bytes in order (BYTES: 4-byte LE length + utf-8).
def raw_bytes(datatype: str, values: list[Any]) -> bytes:
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(b)) + b for b in (str(v).encode("utf-8") for v in values))
    dtypes = {
        "BOOL": "?",
        "INT8": "<i1",
        "INT32": "<i4",
        "INT64": "<i8",
        "UINT16": "<u2",
        "FP16": "<f2",
        "FP32": "<f4",
        "FP64": "<f8",
    }
    return np.asarray(values, dtype=dtypes[datatype]).tobytes()


def binary_request(tensors: list[tuple[str, str, list[int], list[Any], bool]]) -> tuple[bytes, str]:
    """(name, datatype, shape, values, binary?) per input; returns the HTTP body and its header-length header."""
    inputs, tail = [], b""
    for name, datatype, shape, values, binary in tensors:
        spec: dict[str, Any] = {"name": name, "shape": shape, "datatype": datatype}
        if binary:
            data = raw_bytes(datatype, values)
            spec["parameters"] = {"binary_data_size": len(data)}
            tail += data
        else:
            spec["data"] = values
        inputs.append(spec)
    header = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    return header + tail, str(len(header))


def decode_http(body: bytes, header_length: str | None, signature: Signature = SIG) -> Any:
    header, binary = split_binary_body(body, header_length)
    return decode_v2(json.loads(header), binary, signature)


def test_v2_binary_tensors_decode_like_json_ones() -> None:
    body, length = binary_request(
        [
            ("amount", "FP32", [3, 1], [0.5, 1.25, -2.0], True),
            ("hour", "INT64", [3], [0, 23, -5], True),
            ("merchant", "BYTES", [3, 1], ["food", "héllo wörld", ""], True),
            ("online", "BOOL", [3], [True, False, True], True),
        ]
    )
    decoded = decode_http(body, length)
    assert decoded.rows == 3
    assert decoded.columns == {
        "amount": [0.5, 1.25, -2.0],
        "hour": [0, 23, -5],
        "merchant": ["food", "héllo wörld", ""],
        "online": [True, False, True],
    }
    batch = validate_columns(decoded.columns, decoded.rows, SIG, decoded.path)
    assert batch.records[1] == {"amount": 1.25, "hour": 23, "merchant": "héllo wörld", "online": False}


def test_v2_binary_and_json_tensors_mix_in_one_request() -> None:
    body, length = binary_request(
        [
            ("merchant", "BYTES", [2], ["ab", "c"], True),
            ("amount", "FP64", [2], [1.0, 2.0], False),  # JSON: takes no bytes from the tail
            ("hour", "INT8", [2], [7, -1], True),
            ("online", "BOOL", [2], [False, True], False),
        ]
    )
    decoded = decode_http(body, length)
    assert decoded.columns == {"amount": [1.0, 2.0], "hour": [7, -1], "merchant": ["ab", "c"], "online": [False, True]}


@pytest.mark.parametrize(
    ("datatype", "values"),
    [("INT32", [1, -2, 3]), ("UINT16", [0, 65535, 7]), ("FP16", [0.5, -1.5, 2.0]), ("FP64", [1e300, -0.0, 3.5])],
)
def test_v2_binary_numeric_datatypes_round_trip(datatype: str, values: list[Any]) -> None:
    body, length = binary_request([("v", datatype, [3], values, True)])
    assert decode_http(body, length, one("float")).columns == {"v": values}


def test_v2_a_body_from_tritonclient_decodes() -> None:
    import tritonclient.http as triton

    inputs = []
    for name, datatype, values in [
        ("amount", "FP64", np.array([[1.5], [2.5]])),
        ("hour", "INT64", np.array([[3], [4]], dtype=np.int64)),
        ("merchant", "BYTES", np.array([["food"], ["crêpe"]], dtype=object)),
        ("online", "BOOL", np.array([[True], [False]])),
    ]:
        t = triton.InferInput(name, list(values.shape), datatype)
        t.set_data_from_numpy(values, binary_data=True)
        inputs.append(t)
    body, json_size = triton.InferenceServerClient.generate_request_body(inputs)
    ours, our_length = binary_request(
        [
            ("amount", "FP64", [2, 1], [1.5, 2.5], True),
            ("hour", "INT64", [2, 1], [3, 4], True),
            ("merchant", "BYTES", [2, 1], ["food", "crêpe"], True),
            ("online", "BOOL", [2, 1], [True, False], True),
        ]
    )
    assert body[json_size:] == ours[int(our_length) :]  # the same binary tail as our builder
    decoded = decode_http(body, str(json_size))
    assert decoded.columns == {
        "amount": [1.5, 2.5],
        "hour": [3, 4],
        "merchant": ["food", "crêpe"],
        "online": [True, False],
    }


def test_split_binary_body() -> None:
    assert split_binary_body(b'{"a":1}', None) == (b'{"a":1}', b"")
    assert split_binary_body(b'{"a":1}xyz', "7") == (b'{"a":1}', b"xyz")
    assert split_binary_body(b"{}", "2") == (b"{}", b"")
    for bad, message in [
        ("x", "must be a non-negative integer"),
        ("3.0", "must be a non-negative integer"),
        ("1_0", "must be a non-negative integer"),
        ("99", "larger than the body"),
        ("-1", "must be a non-negative integer"),
    ]:
        with pytest.raises(BadRequest, match=message):
            split_binary_body(b"{}", bad)


def binary_input(datatype: str, shape: list[int], size: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "v", "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": size}}]}


@pytest.mark.parametrize(
    ("body", "binary", "message"),
    [
        (binary_input("INT64", [2], 24), b"\0" * 16, "runs past the end of the body"),
        (binary_input("INT64", [2], "16"), b"\0" * 16, "runs past the end of the body"),
        (binary_input("INT64", [2], 15), b"\0" * 15, "15 bytes; its shape and datatype need 16"),
        (binary_input("FP32", [2, 2], 8), b"\0" * 8, "need 16"),
        (binary_input("BYTES", [1], 3), b"\x05\0\0", "truncated BYTES element"),
        (binary_input("BYTES", [2], 5), struct.pack("<I", 1) + b"a", "1 elements but its shape holds 2"),
        (binary_input("BYTES", [1], 10), (struct.pack("<I", 1) + b"a") * 2, "2 elements but its shape holds 1"),
    ],
)
def test_v2_binary_errors(body: dict[str, Any], binary: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_v2(body, binary, one("string"))
    assert message in str(info.value)


def test_v2_a_negative_binary_data_size_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        decode_v2(binary_input("INT64", [1], -8), struct.pack("<qq", 1, 2), one("integer"))


def test_v2_a_tensor_may_not_read_another_tensors_bytes() -> None:
    body = {
        "inputs": [
            binary_input("INT32", [1], 4)["inputs"][0] | {"name": "a"},
            binary_input("INT32", [1], 4)["inputs"][0] | {"name": "b"},
        ]
    }
    sig = Signature(
        inputs=[ColumnSpec(name="a", type="integer"), ColumnSpec(name="b", type="integer")],
        output=OutputSpec(task="regression"),
    )
    assert decode_v2(body, struct.pack("<ii", 5, -6), sig).columns == {"a": [5], "b": [-6]}
    with pytest.raises(BadRequest, match=r"inputs\[1\].binary_data_size runs past"):
        decode_v2(body, struct.pack("<i", 5), sig)


V2_BAD = [
    ([], 'non-empty "inputs" list'),
    ({"inputs": []}, 'non-empty "inputs" list'),
    ({"inputs": {"name": "v"}}, 'non-empty "inputs" list'),
    ({"inputs": [1]}, "inputs[0] must be an object"),
    ({"inputs": [{"shape": [1], "datatype": "FP64", "data": [1.0]}]}, "inputs[0].name must be a string"),
    ({"inputs": [tensor("v", "FP64", [1.0], [1, 1, 1])]}, "one or two non-negative integers"),
    ({"inputs": [tensor("v", "FP64", [1.0], [-1])]}, "one or two non-negative integers"),
    ({"inputs": [tensor("v", "FP64", [1.0], [])]}, "one or two non-negative integers"),
    ({"inputs": [tensor("v", "FP64", [1.0], [1.0])]}, "one or two non-negative integers"),  # type: ignore[list-item]
    ({"inputs": [{"name": "v", "shape": "1", "datatype": "FP64", "data": [1.0]}]}, "one or two non-negative integers"),
    ({"inputs": [tensor("v", "FLOAT64", [1.0])]}, "'FLOAT64' is not a V2 datatype"),
    ({"inputs": [tensor("v", "FP64", [1.0, 2.0], [3])]}, "has 2 values but its shape holds 3"),
    ({"inputs": [{"name": "v", "shape": [1], "datatype": "FP64", "data": 1.0}]}, "inputs[0].data must be a list"),
    ({"inputs": [{"name": "v", "shape": [1], "datatype": "FP64"}]}, "inputs[0].data must be a list"),
    ({"inputs": [tensor("v", "FP64", ["abc"])]}, "values that are not FP64"),
    ({"inputs": [tensor("v", "INT64", [{"a": 1}])]}, "values that are not INT64"),
]


@pytest.mark.parametrize(("body", "message"), V2_BAD)
def test_v2_malformed_tensors_are_bad_requests(body: Any, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_v2(body, b"", one("float"))
    assert message in str(info.value)


def test_v2_tensors_that_do_not_fit_the_signature() -> None:
    two = Signature(
        inputs=[ColumnSpec(name="a", type="float"), ColumnSpec(name="b", type="float")],
        output=OutputSpec(task="regression"),
    )
    cases = [
        ([tensor("a", "FP64", [1.0, 2.0], [1, 2]), tensor("b", "FP64", [1.0])], "a column tensor is [N] or [N, 1]"),
        ([tensor("a", "FP64", [1.0, 2.0]), tensor("b", "FP64", [1.0])], "different numbers of rows"),
        ([tensor("x", "FP64", [1.0, 2.0, 3.0], [1, 3])], "expected one tensor per column (a, b) or one [N, 2] tensor"),
        ([tensor("x", "FP64", [1.0, 2.0])], "has shape [2]"),
        ([tensor("a", "FP64", [1.0]), tensor("c", "FP64", [1.0])], "missing b"),
        ([tensor("c", "FP64", [1.0]), tensor("d", "FP64", [1.0])], "missing a, b"),
    ]
    for inputs, message in cases:
        with pytest.raises(BadRequest) as info:
            decode_v2({"inputs": inputs}, b"", two)
        assert message in str(info.value), (inputs, str(info.value))


@pytest.mark.parametrize(("datatype", "value"), [("UINT8", 300), ("INT8", -129), ("UINT8", -1), ("INT64", 2**64 - 1)])
def test_v2_json_integers_out_of_the_datatype_range_are_bad_requests(datatype: str, value: int) -> None:
    with pytest.raises(BadRequest):
        decode_v2({"inputs": [tensor("v", datatype, [value])]}, b"", one("integer"))


@pytest.mark.parametrize(
    ("datatype", "value", "kind"), [("INT64", 2.5, "integer"), ("INT32", 7.9, "integer"), ("BOOL", "false", "boolean")]
)
def test_v2_json_values_are_not_silently_cast(datatype: str, value: Any, kind: str) -> None:
    sig = one(kind)
    try:
        decoded = decode_v2({"inputs": [tensor("v", datatype, [value])]}, b"", sig)
        validate_columns(decoded.columns, decoded.rows, sig, decoded.path)
    except (BadRequest, InvalidRequest):
        return
    pytest.fail(f"{datatype} {value!r} was accepted as {decoded.columns['v']!r}")


# -- answers back ----------------------------------------------------------------------------------
def test_v2_datatype_of_each_signature_type() -> None:
    assert {k: v2_datatype(k) for k in ("integer", "float", "boolean", "string")} == {
        "integer": "INT64",
        "float": "FP64",
        "boolean": "BOOL",
        "string": "BYTES",
    }
    assert {v2_datatype(k) for k in ("integer", "float", "boolean", "string")} <= V2_DATATYPES


@pytest.mark.parametrize(
    ("values", "datatype", "data"),
    [
        (np.array(["a", "b"], dtype=object), "BYTES", ["a", "b"]),
        (np.array(["a", "bc"]), "BYTES", ["a", "bc"]),
        (np.array([1, "x"], dtype=object), "BYTES", ["1", "x"]),
        (np.array([True, False]), "BOOL", [True, False]),
        (np.array([1, -2], dtype=np.int32), "INT64", [1, -2]),
        (np.array([3, 4], dtype=np.uint8), "INT64", [3, 4]),
        (np.array([0.5, 1.5], dtype=np.float32), "FP64", [0.5, 1.5]),
        (np.array([0.1, 0.2]), "FP64", [0.1, 0.2]),
    ],
)
def test_v2_tensor_datatypes(values: np.ndarray, datatype: str, data: list[Any]) -> None:
    out = v2_tensor("predict", values)
    assert out == {"name": "predict", "shape": [2], "datatype": datatype, "data": data}
    assert all(type(v) in (str, bool, int, float) for v in out["data"])
    json.dumps(out)


def test_v2_tensor_keeps_the_shape_and_flattens_row_major() -> None:
    proba = np.array([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]])
    out = v2_tensor("predict_proba", proba)
    assert out["shape"] == [3, 2] and out["datatype"] == "FP64"
    assert out["data"] == [0.25, 0.75, 0.5, 0.5, 1.0, 0.0]
    assert v2_tensor("x", [1, 2, 3])["datatype"] == "INT64"  # type: ignore[arg-type]


def test_request_ids_are_distinct_random_uuids_even_across_a_fork() -> None:
    import os
    import uuid

    from matchday.serving.request_ids import RequestIds

    ids = RequestIds()
    taken = ids.take(300) + ids.take(1000) + [ids.one()]
    assert len(set(taken)) == len(taken) and all(uuid.UUID(i).version == 4 for i in taken)
    ids.take(1)  # the pool now holds unused random bytes a forked child must not reuse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, ids.one().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 64).decode() != ids.one()
