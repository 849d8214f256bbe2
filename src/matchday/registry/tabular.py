"""Turn whatever tabular data a user holds into one pyarrow Table.

Accepted: pyarrow Tables, pandas and polars DataFrames, dicts of columns, lists of row dicts,
and CSV or Parquet files. Everything downstream (signature, profile, predictors) sees a Table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from matchday.registry.errors import InvalidReference


def read_table_file(path: str | Path) -> pa.Table:
    """Read a CSV or Parquet file, with an error that names the file when that fails."""
    p = Path(path)
    if not p.exists():
        raise InvalidReference(f"{p}: no such file")
    if p.is_dir():
        raise InvalidReference(f"{p} is a directory, not a CSV or Parquet file")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pq.read_table(p)
        if suffix in (".csv", ".txt", ".tsv"):
            opts = pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
            return pacsv.read_csv(p, parse_options=opts)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise InvalidReference(f"{p} could not be read as {suffix[1:]}: {exc}") from exc
    raise InvalidReference(f"{p}: unsupported file type {suffix or '(none)'}; use .csv or .parquet")


def to_table(data: Any, columns: Sequence[str] | None = None) -> pa.Table:
    """Convert ``data`` to a Table; 2-D arrays need ``columns`` to name their columns."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, (str, Path)):
        return read_table_file(data)
    module = type(data).__module__.split(".")[0]
    if module == "pandas" and hasattr(data, "columns"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars" and hasattr(data, "to_arrow"):
        return data.to_arrow()
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise InvalidReference(f"a {data.ndim}-D array is not a table; give a 2-D array or a DataFrame")
        if columns is None:
            raise InvalidReference("a bare array has no column names; give a DataFrame or a dict of columns")
        if data.shape[1] != len(columns):
            raise InvalidReference(f"the array has {data.shape[1]} columns, the model expects {len(columns)}")
        return pa.table({c: data[:, i] for i, c in enumerate(columns)})
    if isinstance(data, Mapping):
        return pa.table({str(k): _column(v) for k, v in data.items()})
    if isinstance(data, Sequence) and data and all(isinstance(r, Mapping) for r in data):
        return pa.Table.from_pylist(list(data))
    raise InvalidReference(f"cannot read tabular data from a {type(data).__name__}")


def _column(values: Any) -> Any:
    return values if isinstance(values, (pa.Array, pa.ChunkedArray, np.ndarray)) else list(values)


def column_kind(dtype: pa.DataType) -> str:
    """The signature's name for an arrow type: integer, float, boolean or string."""
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_integer(dtype):
        return "integer"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "float"
    if pa.types.is_dictionary(dtype):
        return column_kind(dtype.value_type)
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if pa.types.is_null(dtype):
        return "null"
    return "unsupported"


def to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column as numpy; nulls become NaN in numeric columns and None in others."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    if numeric and column.null_count:
        column = column.cast(pa.float64())
    values: np.ndarray = column.to_numpy(zero_copy_only=False)
    return values
