"""One record batch in, one scored table out (a row for every input row): what both engines run.

The scored table holds, per input row, the prediction and one probability column per class, or,
for a row that cannot be scored, the reason and its raw values as JSON. A batch the model raises
on is split in halves until the rows it raises on are found; those are rejected, the rest scored.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from matchday.batch.errors import ScoringFailed
from matchday.batch.validation import check_batch
from matchday.registry import Predictor, Signature

REASON = "_reason"  # null for a scored row
VALUES = "_values"  # a rejected row's raw values, as JSON
ROW_ID = "_id"  # the id column's value, when the job has one
SECONDS = "_seconds"  # the model's time for the batch, per row (the log's latency for batch rows)
INPUT_PREFIX = "_in:"  # a scored row's typed inputs, kept when the rows go to a deployment's log


@dataclass(frozen=True)
class OutputLayout:
    """The columns a version's predictions take: what users of pandas and Spark read without unpacking."""

    classes: list[Any] | None
    prediction_type: pa.DataType

    @classmethod
    def of(cls, signature: Signature, has_proba: bool) -> OutputLayout:
        classes = list(signature.output.classes or []) if signature.output.task == "classification" else None
        return cls(classes if has_proba and classes else None, _label_type(signature))

    @property
    def proba_columns(self) -> list[str]:
        return [f"proba_{c}" for c in self.classes or []]


class BatchScorer:
    """A loaded version scoring record batches; ``keep_inputs`` keeps each row's typed inputs (for the log)."""

    def __init__(self, predictor: Predictor, signature: Signature, *, id_column: str | None, keep_inputs: bool) -> None:
        self.predictor = predictor
        self.signature = signature
        self.id_column = id_column
        self.keep_inputs = keep_inputs
        self.layout = OutputLayout.of(signature, predictor.has_proba)

    def columns(self) -> list[str]:
        """The input columns a reader must give."""
        names = list(self.signature.input_names)
        return names + [self.id_column] if self.id_column and self.id_column not in names else names

    def score(self, batch: pa.RecordBatch, max_failures: int | None = None) -> pa.Table:
        """The scored table of ``batch``; past ``max_failures`` rows the model raised on, the rest of a
        failing slice is rejected whole (the job stops on its reject rate anyway)."""
        n = batch.num_rows
        checked = check_batch(batch, self.signature)
        started = time.perf_counter()
        labels, proba, failed, failed_reasons = self._bisect(checked.table, max_failures)
        seconds = (time.perf_counter() - started) / max(n, 1)
        kept = checked.kept
        reasons: dict[int, str] = dict(zip(checked.rejected.tolist(), checked.reasons))
        if failed.size:
            for position, reason in zip(kept[failed].tolist(), failed_reasons):
                reasons[position] = reason
            ok = np.ones(kept.size, dtype=bool)
            ok[failed] = False
            kept = kept[ok]
        columns: dict[str, pa.Array] = {}
        if self.id_column:
            columns[ROW_ID] = batch.column(self.id_column)
        columns["prediction"] = _spread(pa.array(labels, type=self.layout.prediction_type, from_pandas=True), kept, n)
        for j, name in enumerate(self.layout.proba_columns):
            assert proba is not None
            columns[name] = _spread(pa.array(proba[:, j]), kept, n)
        if reasons:
            rejected = np.array(sorted(reasons), dtype=np.int64)
            raw = batch.take(pa.array(rejected)).to_pylist()
            columns[REASON] = _spread(pa.array([reasons[i] for i in rejected.tolist()], pa.string()), rejected, n)
            columns[VALUES] = _spread(pa.array([json.dumps(r, default=str) for r in raw], pa.string()), rejected, n)
        else:
            columns[REASON] = columns[VALUES] = pa.nulls(n, pa.string())
        columns[SECONDS] = pa.array(np.full(n, seconds))
        if self.keep_inputs:
            accepted = checked.table
            if failed.size:
                accepted = accepted.filter(pa.array(np.isin(np.arange(accepted.num_rows), failed, invert=True)))
            for name in self.signature.input_names:
                columns[INPUT_PREFIX + name] = _spread(accepted.column(name).combine_chunks(), kept, n)
        return pa.table(columns)

    def _bisect(
        self, table: pa.Table, max_failures: int | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, list[str]]:
        """Labels and probabilities of the rows the model scores, and the positions (and reasons) of those it raises on."""
        done: list[tuple[int, np.ndarray, np.ndarray | None]] = []
        failed: list[tuple[int, int, str]] = []
        stack = [(0, table.num_rows)]
        failures = 0
        while stack:
            offset, count = stack.pop()
            if count == 0:
                continue
            try:
                labels, proba = self._call(table.slice(offset, count))
            except ScoringFailed:
                raise
            except Exception as exc:  # the model's own: which rows, is what the bisection finds
                reason = f"the model raised {type(exc).__name__}: {exc}"
                if count == 1:
                    failed.append((offset, 1, reason))
                    failures += 1
                elif max_failures is not None and failures > max_failures:
                    failed.append(
                        (
                            offset,
                            count,
                            f"{reason} (on a slice of {count} rows, not split further: too many rows failed)",
                        )
                    )
                    failures += count
                else:
                    half = count // 2
                    stack += [(offset + half, count - half), (offset, half)]
                continue
            done.append((offset, labels, proba))
        done.sort(key=lambda d: d[0])
        labels = np.concatenate([d[1] for d in done]) if done else np.empty(0)
        proba = None
        if self.layout.classes is not None:
            k = len(self.layout.classes)
            proba = np.concatenate([d[2] for d in done if d[2] is not None]) if done else np.empty((0, k))
        positions = np.array([o + i for o, c, _ in failed for i in range(c)], dtype=np.int64)
        order = np.argsort(positions, kind="stable")
        reasons = [r for _, c, r in failed for _ in range(c)]
        return labels, proba, positions[order], [reasons[i] for i in order]

    def _call(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray | None]:
        labels, proba = self.predictor.predict_with_proba(table)
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels.ravel()
        if labels.shape != (table.num_rows,):
            raise ScoringFailed(f"the model returned predictions of shape {labels.shape} for {table.num_rows} rows")
        if self.layout.classes is None:
            return labels, None
        k = len(self.layout.classes)
        if proba is None or proba.shape != (table.num_rows, k):
            shape = None if proba is None else proba.shape
            raise ScoringFailed(
                f"the model returned probabilities of shape {shape} for {table.num_rows} rows of {k} classes"
            )
        return labels, proba


def _spread(values: pa.Array, positions: np.ndarray, n: int) -> pa.Array:
    """``values`` (one per position) laid out over ``n`` rows, null elsewhere."""
    if positions.size == n:
        return values
    index = np.full(n, -1, dtype=np.int64)
    index[positions] = np.arange(positions.size)
    return values.take(pa.array(index, mask=index < 0))


def _label_type(signature: Signature) -> pa.DataType:
    if signature.output.task == "regression":
        return pa.float64()
    classes = signature.output.classes or []
    if classes and all(isinstance(c, bool) for c in classes):
        return pa.bool_()
    if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return pa.int64()
    return pa.string()
