"""A version's signature: its input columns (type, nullability, range, categories) and its output.

Inferred from the reference data when not given; stored as JSON; serving validates against it.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from matchday.registry.errors import InvalidReference
from matchday.registry.tabular import column_kind

ColumnType = Literal["integer", "float", "boolean", "string"]
MAX_CATEGORIES = 1000  # beyond this a string column is free text: no category set is kept


class ColumnSpec(BaseModel):
    """One input column as the model expects it."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: ColumnType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: list[str | int | bool] | None = None


class OutputSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    task: Literal["classification", "regression"]
    classes: list[str | int | bool] | None = None


class Signature(BaseModel):
    """What goes in and what comes out; the JSON form is what the store keeps."""

    model_config = ConfigDict(frozen=True)

    inputs: list[ColumnSpec]
    output: OutputSpec

    @cached_property
    def input_names(self) -> list[str]:
        """(Cached: the request path asks for it several times per request; the model is frozen.)"""
        return [c.name for c in self.inputs]

    def column(self, name: str) -> ColumnSpec:
        for c in self.inputs:
            if c.name == name:
                return c
        raise KeyError(name)


def infer_inputs(table: pa.Table) -> list[ColumnSpec]:
    """Column specs from reference data: type, whether nulls occur, range, and categories seen."""
    specs: list[ColumnSpec] = []
    problems: list[str] = []
    for name in table.column_names:
        col = table.column(name)
        kind = column_kind(col.type)
        if kind in ("null", "unsupported"):
            what = "has no non-missing value" if kind == "null" else f"has unsupported type {col.type}"
            problems.append(f"column {name!r} {what}")
            continue
        if col.null_count == len(col):
            problems.append(f"column {name!r} has no non-missing value")
            continue
        lo = hi = None
        categories = None
        if kind in ("integer", "float"):
            values = col.cast(pa.float64()) if kind == "integer" else col
            mm = pc.min_max(values)
            lo, hi = float(mm["min"].as_py()), float(mm["max"].as_py())
            if not (np.isfinite(lo) and np.isfinite(hi)):
                nan_free = pc.filter(values, pc.is_finite(values))
                mm = pc.min_max(nan_free)
                lo, hi = mm["min"].as_py(), mm["max"].as_py()
        else:
            uniques = pc.unique(col.combine_chunks().dictionary_decode() if pa.types.is_dictionary(col.type) else col)
            uniques = [u for u in uniques.to_pylist() if u is not None]
            if len(uniques) <= MAX_CATEGORIES:
                categories = sorted(uniques, key=lambda v: (str(type(v)), v))
        nullable = bool(col.null_count) or (kind == "float" and bool(pc.sum(pc.is_nan(col)).as_py()))
        specs.append(ColumnSpec(name=name, type=kind, nullable=nullable, min=lo, max=hi, categories=categories))  # type: ignore[arg-type]
    if problems:
        raise InvalidReference("the reference data cannot describe the model's inputs", problems)
    return specs


def infer_output(predictions: np.ndarray, classes: list[Any] | None) -> OutputSpec:
    """Classification when the model names its classes or predicts labels; regression for floats."""
    if classes is not None:
        return OutputSpec(task="classification", classes=[_plain(c) for c in classes])
    preds = np.asarray(predictions)
    if preds.dtype.kind in "OUSb" or preds.dtype.kind in "iu":
        labels = [_plain(c) for c in np.unique(preds[~_isnull(preds)])] if preds.size else []
        return OutputSpec(task="classification", classes=labels)
    return OutputSpec(task="regression")


def _isnull(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "O":
        return np.array([v is None for v in a], dtype=bool)
    return np.zeros(a.shape, dtype=bool)


def _plain(value: Any) -> Any:
    """A numpy scalar as a JSON-able Python value."""
    return value.item() if isinstance(value, np.generic) else value
