"""Check request values against a signature and turn them into typed columns.

Every problem is reported with its field path (``instances[3].amount``), all at once. Values
outside the reference range and categories never seen are scored, but counted for monitoring.
Values *far* outside it (`FAR_OUT_OF_RANGE`) are noted with their field, so that a model that
cannot score them is the caller's problem (a 422), not the version's failure (docs/serving.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pyarrow as pa

from matchday.registry import ColumnSpec, Signature
from matchday.serving.batching import Columns
from matchday.serving.codecs import MISSING
from matchday.serving.errors import InvalidRequest

_ARROW = {"integer": pa.int64(), "float": pa.float64(), "boolean": pa.bool_(), "string": pa.string()}
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


@dataclass
class Quality:
    """Input-quality counts of one request: scored, but worth watching."""

    out_of_range: int = 0
    unseen_category: int = 0
    by_feature: dict[str, int] = field(default_factory=dict)
    far: dict[int, list[dict[str, str]]] = field(default_factory=dict)  # row -> its values far out of range

    def far_problems(self, rows: Any) -> list[dict[str, str]]:
        """The far-out-of-range values among ``rows`` (row indices), as field problems."""
        if not self.far:
            return []
        return [p for r in sorted(set(map(int, rows)) & self.far.keys()) for p in self.far[r]]


@dataclass
class ValidatedBatch:
    columns: Columns  # typed, in signature order: the micro-batch makes the Arrow table
    records: list[dict[str, Any]]  # the typed inputs per row, as logged
    quality: Quality

    @cached_property
    def table(self) -> pa.Table:
        return self.columns.to_arrow()


def validate_columns(columns: dict[str, list[Any]], rows: int, signature: Signature, path: str) -> ValidatedBatch:
    """``columns`` maps column name to its values; ``path`` formats a field path from (row, column)."""
    problems: list[dict[str, str]] = []
    quality = Quality()
    typed: dict[str, list[Any]] = {}
    for spec, plain, lo, hi in _checks(signature):
        values = columns.get(spec.name)
        if values is None:
            problems.append(
                {"field": path.format(row="*", column=spec.name), "problem": "missing: the model needs this input"}
            )
            continue
        if plain is not None and len(values) == 1 and type(values[0]) is plain and lo <= values[0] <= hi:
            typed[spec.name] = values  # the common case: one number of its type, within range, as it came
            continue
        out: list[Any] = []
        for i, raw in enumerate(values):
            if plain is not None and type(raw) is plain and lo <= raw <= hi:
                out.append(raw)  # decided without a call: a number of its type, within range
                continue
            value, problem = _coerce(raw, spec)
            if problem:
                problems.append({"field": path.format(row=i, column=spec.name), "problem": problem})
            elif value is not None and _count_quality(value, spec, quality):
                quality.far.setdefault(i, []).append(
                    {"field": path.format(row=i, column=spec.name), "problem": _far_problem(value, spec)}
                )
            out.append(value)
        typed[spec.name] = out
    if problems:
        raise InvalidRequest(f"{len(problems)} invalid value(s) in the request", problems)
    types = _types(signature)
    if rows == 1:
        records = [{name: values[0] for name, values in typed.items()}]
    elif typed:
        names = list(typed)
        records = [dict(zip(names, row, strict=True)) for row in zip(*typed.values(), strict=False)]
    else:
        records = [{} for _ in range(rows)]
    return ValidatedBatch(Columns(typed, types, rows), records, quality)


_Check = tuple[ColumnSpec, Any, float, float]  # (spec, float or int or None, low, high)
_PLANS: dict[int, tuple[Signature, list[_Check], dict[str, pa.DataType]]] = {}


def _checks(signature: Signature) -> list[_Check]:
    """Each input with, for numbers of a known range, the Python type and range a value passes
    without a call: worked out once per signature (the request path asks at every request)."""
    return _plan(signature)[1]


def _types(signature: Signature) -> dict[str, pa.DataType]:
    return _plan(signature)[2]


def _plan(signature: Signature) -> tuple[Signature, list[_Check], dict[str, pa.DataType]]:
    plan = _PLANS.get(id(signature))
    if plan is None or plan[0] is not signature:  # the plan holds its signature: an id is not reused while held
        checks: list[_Check] = []
        for spec in signature.inputs:
            if spec.type in ("float", "integer") and spec.min is not None and spec.max is not None:
                checks.append((spec, float if spec.type == "float" else int, spec.min, spec.max))
            else:
                checks.append((spec, None, 0.0, 0.0))
        if len(_PLANS) >= 1000:  # versions come and go: a bounded few kept
            _PLANS.clear()
        plan = _PLANS[id(signature)] = (signature, checks, {s.name: _ARROW[s.type] for s in signature.inputs})
    return plan


def _coerce(raw: Any, spec: ColumnSpec) -> tuple[Any, str | None]:
    """The value as the column's type, or a problem saying why it cannot be."""
    if raw is MISSING:
        return None, "missing: the model needs this input"
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None, None if spec.nullable else "null is not allowed: the reference data had no missing values here"
    if isinstance(raw, (dict, list)):
        return None, f"expected {_article(spec.type)}, got {'an object' if isinstance(raw, dict) else 'an array'}"
    kind = spec.type
    if kind == "float":
        if isinstance(raw, bool):
            return None, "expected a number, got a boolean"
        if isinstance(raw, (int, float)):
            value = float(raw)
        else:
            try:
                value = float(str(raw).strip())
            except ValueError:
                return None, f"expected a number, got {raw!r}"
        if math.isnan(value):
            return None, None if spec.nullable else "NaN is not allowed: the reference data had no missing values here"
        if math.isinf(value):
            return None, "infinite values are not allowed"
        return value, None
    if kind == "integer":
        if isinstance(raw, bool):
            return None, "expected an integer, got a boolean"
        if isinstance(raw, int):
            value = raw
        else:
            value, problem = _integer(raw)
            if problem:
                return None, None if problem == "nan" and spec.nullable else _NAN if problem == "nan" else problem
        if not _INT64_MIN <= value <= _INT64_MAX:
            return None, f"{raw!r} is outside the 64-bit integer range"
        return value, None
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw, None
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw), None
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE, None
        return None, f"expected a boolean, got {raw!r}"
    if isinstance(raw, bool):
        return None, "expected a string, got a boolean"
    text = raw if isinstance(raw, str) else str(raw)
    if "\x00" in text:
        return None, "contains a NUL character"
    return text, None


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NAN = "NaN is not allowed: the reference data had no missing values here"


def _integer(raw: Any) -> tuple[int, str | None]:
    """An integer from a float or a string, every digit kept ("9007199254740993", "3.0", "1e3")."""
    if isinstance(raw, float):
        number = raw
    else:
        text = str(raw).strip()
        try:
            return int(text), None
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return 0, f"expected an integer, got {raw!r}"
    if math.isnan(number):
        return 0, "nan"
    if math.isinf(number) or not number.is_integer():
        return 0, f"expected an integer, got {raw!r}"
    return int(number), None


FAR_OUT_OF_RANGE = 10.0  # "far": past the reference range by more than this many times its width


def _count_quality(value: Any, spec: ColumnSpec, quality: Quality) -> bool:
    """Count ``value`` if it is out of range or unseen; whether it is far out of range."""
    flagged = far = False
    if spec.type in ("integer", "float") and spec.min is not None and spec.max is not None:
        if value < spec.min or value > spec.max:
            quality.out_of_range += 1
            flagged = True
            margin = FAR_OUT_OF_RANGE * far_unit(spec.min, spec.max)
            far = value < spec.min - margin or value > spec.max + margin
    elif spec.categories is not None and value not in spec.categories:
        quality.unseen_category += 1
        flagged = True
    if flagged:
        quality.by_feature[spec.name] = quality.by_feature.get(spec.name, 0) + 1
    return far


def far_unit(low: float, high: float) -> float:
    """The reference range's width; for a constant column, its magnitude (at least 1)."""
    return high - low if high > low else max(abs(high), 1.0)


def _far_problem(value: Any, spec: ColumnSpec) -> str:
    return (
        f"{value!r} is far outside the reference range [{spec.min:g}, {spec.max:g}] and the model "
        "cannot score it (it failed or answered a non-finite number)"
    )


def _article(kind: str) -> str:
    return {"integer": "an integer", "float": "a number", "boolean": "a boolean", "string": "a string"}[kind]
