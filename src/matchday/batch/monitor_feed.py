"""A batch job's scored rows into a deployment's prediction log, so its monitors watch batch traffic.

Rows are marked ``routing.source = "batch"`` with the job's id. Each row's request id is
``uuid5(job id, row number)``, the row's number over the whole input: unique per row even when ids
repeat or are null, and the same in every run, so a resumed job that scores a part again logs none
of its rows twice (the log skips a request id it holds). The entity id is the id column's value
(null for a null id), so labels that arrive later by entity join through the feedback path as for
online rows.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from matchday.batch.scoring import INPUT_PREFIX, SECONDS, OutputLayout
from matchday.store import PredictionLogStore

ROWS_PER_INSERT = 5_000  # one transaction (and one log batch) per this many rows


def request_id(job_id: str, row: int) -> str:
    """The log's request id of a batch job's row number ``row`` (over the whole input, from 0): the
    same in every run of the job, and different for every row.

    >>> request_id("6f0a3c1e3d3b5d0e9a576d61746368e1", 7) == request_id("6f0a3c1e3d3b5d0e9a576d61746368e1", 7)
    True
    >>> request_id("6f0a3c1e3d3b5d0e9a576d61746368e1", 7) == request_id("6f0a3c1e3d3b5d0e9a576d61746368e1", 8)
    False
    """
    return str(uuid.uuid5(uuid.UUID(job_id), f"row:{int(row)}"))


class MonitorFeed:
    """Collects scored rows and inserts them into the log in transactions of `ROWS_PER_INSERT`."""

    def __init__(
        self,
        log: PredictionLogStore,
        deployment: str,
        model: str,
        version: int,
        model_ref: str,
        job_id: str,
        layout: OutputLayout,
        input_names: list[str],
    ) -> None:
        self.log, self.deployment, self.model, self.version = log, deployment, model, version
        self.job_id, self.layout, self.input_names = job_id, layout, input_names
        self.routing = {"source": "batch", "job": job_id, "plan": "single", "arm": "primary", "model_ref": model_ref}
        self._rows: list[dict[str, Any]] = []
        self.written = 0

    def add(self, rows: np.ndarray, ids: pa.Array | None, scored: pa.Table) -> None:
        """Scored rows, with their row numbers over the input and their ids (None: the job has no id column)."""
        at = datetime.now(UTC)
        keys: list[Any] = ids.to_pylist() if ids is not None else [None] * scored.num_rows
        predictions = scored.column("prediction").to_pylist()
        seconds = scored.column(SECONDS).to_numpy()
        names = self.input_names
        inputs = pa.table({n: scored.column(INPUT_PREFIX + n) for n in names}).to_pylist()
        probabilities: list[Any] = [None] * scored.num_rows
        if self.layout.classes is not None:
            matrix = np.column_stack([scored.column(c).to_numpy() for c in self.layout.proba_columns])
            probabilities = matrix.tolist()
        numbers = rows.tolist()
        for row, key, prediction, row_inputs, proba, latency in zip(
            numbers, keys, predictions, inputs, probabilities, seconds
        ):
            self._rows.append(
                {
                    "request_id": request_id(self.job_id, row),
                    "entity_id": None if key is None else str(key)[:200],
                    "deployment": self.deployment,
                    "model": self.model,
                    "version": self.version,
                    "at": at,
                    "inputs": row_inputs,
                    "prediction": prediction,
                    "probabilities": proba,
                    "latency_seconds": float(latency),
                    "role": "served",
                    "routing": self.routing,
                }
            )
        if len(self._rows) >= ROWS_PER_INSERT:
            self.flush()

    def flush(self) -> None:
        """Insert what is collected (called at the end of each part, before the manifest records it)."""
        while self._rows:
            chunk, self._rows = self._rows[:ROWS_PER_INSERT], self._rows[ROWS_PER_INSERT:]
            self.written += self.log.insert(chunk)
