"""The one interface every flavor loads into, and the contract a flavor implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from matchday.registry.errors import InvalidInput, InvalidReference
from matchday.registry.signature import Signature
from matchday.registry.tabular import to_numpy, to_table

_ARROW_TYPES = {"integer": pa.int64(), "float": pa.float64(), "boolean": pa.bool_(), "string": pa.string()}


@dataclass(frozen=True)
class FloatRows:
    """Rows whose inputs are all numbers, in a signature's order, as one float64 matrix: what a
    micro-batch of validated requests becomes without Arrow (an Arrow array per column per batch
    was a tenth of a loaded server's time). ``matrix`` is (rows, columns) and column-major, as
    `as_pandas` lays out a float table, so a model sees the same array, to the bit, either way;
    a missing value is NaN, as a null becomes there."""

    names: list[str]
    matrix: np.ndarray

    @property
    def num_rows(self) -> int:
        return int(self.matrix.shape[0])

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_arrays([pa.array(self.matrix[:, i]) for i in range(len(self.names))], names=self.names)


class Predictor(ABC):
    """A loaded model: ``predict`` for every flavor, ``predict_proba`` where the model has it.

    Input may be a DataFrame (pandas or polars), a pyarrow Table, a dict of columns or a list of
    row dicts; with a signature, columns are selected and ordered by it and cast to its types.
    """

    flavor: ClassVar[str]
    # whether the flavor reads its input only through `as_pandas` / `as_matrix`, which take `FloatRows`
    accepts_float_rows: ClassVar[bool] = False

    def __init__(self) -> None:
        self.signature: Signature | None = None
        self.ref: str | None = None

    @property
    def has_proba(self) -> bool:
        return False

    @property
    def classes(self) -> list[Any] | None:
        if self.signature is not None and self.signature.output.classes is not None:
            return list(self.signature.output.classes)
        return self._native_classes()

    def predict(self, data: Any) -> np.ndarray:
        return np.asarray(self._predict(self.prepare(data)))

    def predict_proba(self, data: Any) -> np.ndarray:
        if not self.has_proba:
            raise InvalidInput(f"this {self.flavor} model has no predict_proba (it is not a probabilistic classifier)")
        return np.asarray(self._predict_proba(self.prepare(data)), dtype=np.float64)

    def predict_with_proba(self, data: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """``predict`` and (where the model has it) ``predict_proba`` of the same rows, the input
        prepared once: what serving asks of every micro-batch. Equal to the two calls."""
        table = data if self._takes_as_is(data) else self.prepare(data)
        if not self.has_proba:
            return np.asarray(self._predict(table)), None
        labels, proba = self._predict_both(table)
        return np.asarray(labels), np.asarray(proba, dtype=np.float64)

    def _takes_as_is(self, data: Any) -> bool:
        """`FloatRows` in this model's input order and types, which its flavor reads as they are."""
        return (
            isinstance(data, FloatRows)
            and self.accepts_float_rows
            and self.signature is not None
            and data.names == self.signature.input_names
            and all(spec.type == "float" for spec in self.signature.inputs)
        )

    def prepare(self, data: Any) -> pa.Table:
        """The input as a Table in the signature's column order and types."""
        if isinstance(data, FloatRows):
            data = data.to_arrow()
        names = self.signature.input_names if self.signature else None
        try:
            table = to_table(data, columns=names)
        except InvalidReference as exc:
            raise InvalidInput(exc.message) from exc
        if self.signature is None:
            return table
        present = set(table.column_names)  # (a property that builds its list anew: not inside the loop)
        missing = [n for n in names or [] if n not in present]
        if missing:
            raise InvalidInput("input is missing columns the model needs", [f"{n}: missing" for n in missing])
        problems: list[str] = []
        columns = []
        for spec in self.signature.inputs:
            col = table.column(spec.name)
            target = _ARROW_TYPES[spec.type]
            if col.type != target:
                try:
                    col = col.cast(target)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    problems.append(f"{spec.name}: cannot read {col.type} as {spec.type} ({exc})")
            columns.append(col)
        if problems:
            raise InvalidInput("input columns have the wrong types", problems)
        return pa.table(dict(zip(names or [], columns)))

    # what each flavor implements ----------------------------------------------------------
    @abstractmethod
    def _predict(self, table: pa.Table) -> Any: ...

    def _predict_proba(self, table: pa.Table) -> Any:
        raise NotImplementedError

    def _predict_both(self, table: pa.Table) -> tuple[Any, Any]:
        """Labels and probabilities; a flavor that can give both from one model call overrides this."""
        return self._predict(table), self._predict_proba(table)

    def _native_classes(self) -> list[Any] | None:
        """Class labels as the model itself knows them (before a signature exists)."""
        return None

    def declared_inputs(self) -> list[str] | int | None:
        """Input names the model declares, or just their count, or None if it says nothing."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.ref or '(unregistered)'}>"


def as_matrix(table: pa.Table | FloatRows) -> np.ndarray:
    """Columns side by side: float64 when every column is numeric, object otherwise."""
    if isinstance(table, FloatRows):
        return table.matrix
    cols = [to_numpy(table.column(i)) for i in range(table.num_columns)]
    if all(c.dtype.kind in "biuf" for c in cols):
        return (
            np.column_stack([c.astype(np.float64, copy=False) for c in cols]) if cols else np.empty((table.num_rows, 0))
        )
    return np.column_stack([c.astype(object) for c in cols])


def as_pandas(table: pa.Table | FloatRows) -> Any:
    """The table as a DataFrame; float64 columns go through one 2-D array (a third of Arrow's
    ``to_pandas`` for the one-row tables serving scores)."""
    if isinstance(table, FloatRows):
        import pandas as pd

        return pd.DataFrame(table.matrix, columns=table.names, copy=False)
    if (
        table.num_columns
        and all(t == pa.float64() for t in table.schema.types)
        and not any(c.null_count for c in table.columns)
    ):
        import pandas as pd

        # column-major, as to_pandas lays a float block out: the model sees the same array, to the bit
        matrix = np.vstack([c.to_numpy() for c in table.columns]).T
        return pd.DataFrame(matrix, columns=table.column_names, copy=False)
    return table.to_pandas()


@dataclass
class Packed:
    """A model turned into artifact bytes, with the live predictor used to check and profile it."""

    flavor: str
    data: bytes
    predictor: Predictor
    options: dict[str, Any] = field(default_factory=dict)


class Flavor(ABC):
    """How one kind of model is recognised, stored as bytes, and loaded back."""

    name: ClassVar[str]

    @abstractmethod
    def pack(self, model: Any, *, trust_pickle: bool = False) -> Packed | None:
        """Bytes for ``model`` if this flavor handles it, else None (so detection moves on)."""

    @abstractmethod
    def load(self, data: bytes, options: dict[str, Any], cache_dir: Path) -> Predictor: ...
