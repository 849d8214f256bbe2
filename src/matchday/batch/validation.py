"""Each record batch checked against the version's signature: rows that cannot be scored are set
aside with the reason, never dropped, and the rest cast to the signature's types.

Whole columns are cast at once; only a column whose cast fails is looked at value by value, so a
clean batch costs one cast per column that is not already of its type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from matchday.batch.errors import BatchInputError
from matchday.registry import ColumnSpec, Signature

ARROW_TYPES = {"integer": pa.int64(), "float": pa.float64(), "boolean": pa.bool_(), "string": pa.string()}
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


@dataclass
class Checked:
    """A batch split: the rows the model can score (typed) and those it cannot, with why."""

    table: pa.Table  # the signature's columns, of its types, accepted rows only
    kept: np.ndarray  # positions in the batch of the accepted rows
    rejected: np.ndarray  # positions of the rejected rows
    reasons: list[str]  # one per rejected row


def check_schema(schema: pa.Schema, signature: Signature, where: str, id_column: str | None) -> None:
    """Columns the model needs (and the id column) must be in every file: a file without them is the
    input's mistake, said before any row is scored, not a million rejects."""
    have = set(schema.names)
    missing = [n for n in signature.input_names if n not in have]
    problems = [f"missing column {n!r} ({_article(signature.column(n).type)} input of the model)" for n in missing]
    if id_column is not None and id_column not in have:
        problems.append(f"missing the id column {id_column!r}")
    for spec in signature.inputs:
        if spec.name in have and not _castable(schema.field(spec.name).type):
            problems.append(f"column {spec.name!r} is {schema.field(spec.name).type}, not {_article(spec.type)}")
    if problems:
        raise BatchInputError(
            f"{where} cannot be scored by the model", [*problems, f"its columns: {', '.join(schema.names)}"]
        )


def check_batch(batch: pa.RecordBatch, signature: Signature) -> Checked:
    """Cast each input to its type; a value that does not cast, or a null (NaN) where the reference
    had none, rejects its row with the column and the reason."""
    n = batch.num_rows
    problems: dict[int, list[str]] = {}
    columns: list[pa.Array] = []
    for spec in signature.inputs:
        column = batch.column(spec.name)
        typed = _cast(column, spec, problems)
        if not spec.nullable:
            missing = typed.is_null()
            if pa.types.is_floating(typed.type):
                missing = pc.or_(missing, pc.fill_null(pc.is_nan(typed), False))
            if pc.any(missing).as_py():
                for i in np.flatnonzero(missing.to_numpy(zero_copy_only=False)):
                    if column[int(i)].is_valid and not typed[int(i)].is_valid:
                        continue  # a value that did not cast: said already
                    problems.setdefault(int(i), []).append(
                        f"{spec.name}: null is not allowed (the reference data had no missing values here)"
                    )
        columns.append(typed)
    table = pa.Table.from_arrays(columns, names=signature.input_names)
    if not problems:
        return Checked(table, np.arange(n), np.empty(0, dtype=np.int64), [])
    rejected = np.array(sorted(problems), dtype=np.int64)
    mask = np.ones(n, dtype=bool)
    mask[rejected] = False
    return Checked(
        table.filter(pa.array(mask)), np.flatnonzero(mask), rejected, ["; ".join(problems[i]) for i in rejected]
    )


def _cast(column: pa.Array, spec: ColumnSpec, problems: dict[int, list[str]]) -> pa.Array:
    target = ARROW_TYPES[spec.type]
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if column.type == target:
        return column
    if not (spec.type == "boolean" and pa.types.is_string(column.type)):  # Arrow reads only "true"/"false"
        try:
            return column.cast(target)  # safe: a truncation or overflow fails, and is then found value by value
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
    values: list[Any] = []
    for i, raw in enumerate(column.to_pylist()):
        value, problem = coerce(raw, spec.type)
        if problem is not None:
            problems.setdefault(i, []).append(f"{spec.name}: {problem}")
        values.append(value)
    return pa.array(values, type=target)


def coerce(raw: Any, kind: str) -> tuple[Any, str | None]:
    """One value as the column's kind, or None and why it cannot be.

    >>> coerce("1.5", "float")
    (1.5, None)
    >>> coerce("abc", "float")
    (None, "'abc' is not a number")
    >>> coerce(2.5, "integer")
    (None, '2.5 is not an integer')
    """
    if raw is None:
        return None, None
    if kind == "string":
        return (raw if isinstance(raw, str) else str(raw)), None
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw, None
        text = str(raw).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE, None
        return None, f"{raw!r} is not a boolean"
    try:
        number = float(raw) if not isinstance(raw, (int, bool)) else raw
    except (TypeError, ValueError):
        return None, f"{raw!r} is not a number"
    if isinstance(raw, bool):
        return None, f"{raw!r} is not a number"
    if kind == "float":
        return float(number), None
    if isinstance(number, float) and (math.isnan(number) or not number.is_integer()):
        return None, f"{raw!r} is not an integer"
    if not -(2**63) <= int(number) < 2**63:
        return None, f"{raw!r} is out of the 64-bit integer range"
    return int(number), None


def _castable(dtype: pa.DataType) -> bool:
    """Types a value of which may still read as an input (numbers, text, booleans, nulls)."""
    if pa.types.is_dictionary(dtype):
        return _castable(dtype.value_type)
    return (
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_decimal(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_null(dtype)
    )


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
