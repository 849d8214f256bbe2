"""Adaptive micro-batching: concurrent requests to one version become one model call.

One task owns the queue. While the model is busy, requests pile up; the next call takes them all
(up to ``max_batch_size`` rows), so batches grow with concurrency and a lone request never waits
longer than ``max_wait`` (zero by default). Merging and splitting are pure functions. When the
model fails on a merged call, the batch is scored again in halves, down to the request whose rows
it fails on: the failure is only theirs, at about log2(n) extra calls per bad request. A call that
times out (`model_calls.py`) fails its whole batch at once: calling a hung model again in halves
would only hang more threads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate, pairwise
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from matchday.registry import FloatRows
from matchday.serving.errors import ModelTimeout
from matchday.serving.model_calls import ModelCalls


@dataclass
class Scored:
    predictions: np.ndarray
    probabilities: np.ndarray | None


@dataclass(frozen=True)
class Columns:
    """A request's typed input columns as plain lists. Arrow costs ~5 us per array, so a one-row
    request of 30 inputs was 200 us as a table; the micro-batch builds one table of all its requests."""

    values: dict[str, list[Any]]
    types: dict[str, pa.DataType]
    num_rows: int

    def take(self, rows: np.ndarray) -> Columns:
        index = rows.tolist()
        return Columns({n: [v[i] for i in index] for n, v in self.values.items()}, self.types, len(index))

    def select(self, names: list[str]) -> Columns:
        return Columns({n: self.values[n] for n in names}, {n: self.types[n] for n in names}, self.num_rows)

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_arrays(
            [pa.array(v, type=self.types[n]) for n, v in self.values.items()], names=list(self.values)
        )

    def to_model_input(self) -> pa.Table | FloatRows:
        """What the model is given: every column a float, one float64 matrix (no Arrow array per
        column); otherwise the Arrow table."""
        if self.values and all(t == pa.float64() for t in self.types.values()):
            # (columns, rows) -> its transpose: (rows, columns), column-major, as `as_pandas` makes it
            matrix = np.array(list(self.values.values()), dtype=np.float64).reshape(len(self.values), self.num_rows)
            return FloatRows(list(self.values), matrix.T)
        return self.to_arrow()

    @staticmethod
    def concat(parts: list[Columns]) -> Columns:
        first = parts[0]
        values = {n: [x for p in parts for x in p.values[n]] for n in first.values}
        return Columns(values, first.types, sum(p.num_rows for p in parts))


Rows: TypeAlias = pa.Table | Columns  # a request's rows: typed lists, or a table (batch jobs, tests)


def merge(tables: list[Rows]) -> tuple[pa.Table | FloatRows, list[int]]:
    """One table of all rows (or, all numbers, one matrix), and the offsets where each request's rows start."""
    offsets = list(accumulate((t.num_rows for t in tables), initial=0))
    columns = [t for t in tables if isinstance(t, Columns)]
    if len(columns) == len(tables) and all(list(c.values) == list(columns[0].values) for c in columns):
        return Columns.concat(columns).to_model_input(), offsets
    arrow = [t.to_arrow() if isinstance(t, Columns) else t for t in tables]
    return (arrow[0] if len(arrow) == 1 else pa.concat_tables(arrow)), offsets


class ModelOutputError(RuntimeError):
    """The model answered a different number of rows than it was given."""


def split(scored: Scored, offsets: list[int]) -> list[Scored]:
    rows = offsets[-1]
    if len(scored.predictions) != rows or (scored.probabilities is not None and len(scored.probabilities) != rows):
        raise ModelOutputError(f"the model returned {len(scored.predictions)} predictions for {rows} rows")
    out = []
    for start, end in pairwise(offsets):
        proba = None if scored.probabilities is None else scored.probabilities[start:end]
        out.append(Scored(scored.predictions[start:end], proba))
    return out


@dataclass
class _Item:
    table: Rows
    future: asyncio.Future[Scored]


class MicroBatcher:
    """Owns the queue of one model version; ``score`` is awaited by each request."""

    def __init__(
        self,
        predict: ModelCalls[pa.Table | FloatRows, Scored] | Callable[[pa.Table | FloatRows], Scored],
        *,
        max_batch_size: int = 64,
        max_wait: float = 0.0,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        """``predict``: the model's calls with their timeout, or a plain function (the default timeout)."""
        self.calls = predict if isinstance(predict, ModelCalls) else ModelCalls(predict)
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.observe = observe
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._held: _Item | None = None  # taken from the queue but too big for the last batch
        self._dispatching = False
        self._task: asyncio.Task[None] | None = None

    async def score(self, table: Rows) -> Scored:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[Scored] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Item(table, future))
        return await future

    @property
    def idle(self) -> bool:
        return self._queue.empty() and self._held is None and not self._dispatching

    async def retire(self, poll: float = 0.5, patience: float = 120.0) -> None:
        """Close once the requests already queued are answered (after a route moved away)."""
        deadline = time.monotonic() + patience
        while not self.idle and time.monotonic() < deadline:
            await asyncio.sleep(poll)
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.calls.close()

    async def _run(self) -> None:
        while True:
            first, self._held = (self._held, None) if self._held else (await self._queue.get(), None)
            batch = [first]
            rows = first.table.num_rows  # a request over the limit on its own is still scored whole
            deadline = time.monotonic() + self.max_wait
            while rows < self.max_batch_size:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                if rows + item.table.num_rows > self.max_batch_size:
                    self._held = item  # first in the next batch
                    break
                batch.append(item)
                rows += item.table.num_rows
            await self._dispatch(batch)

    async def _dispatch(self, batch: list[_Item]) -> None:
        self._dispatching = True
        try:
            await self._score(batch)
        finally:
            self._dispatching = False

    async def _score(self, batch: list[_Item]) -> None:
        batch = [b for b in batch if not b.future.done()]  # a cancelled request is not scored again
        if not batch:
            return
        try:
            table, offsets = merge([b.table for b in batch])
            scored = await self.calls(table)
            parts = split(scored, offsets)
        except ModelTimeout as exc:  # late (or not called: stuck): no call in halves, every request answered now
            for b in batch:
                if not b.future.done():
                    b.future.set_exception(exc)
            return
        except Exception as exc:
            if len(batch) > 1:  # whose rows does the model fail on? halves, so one bad request costs ~log2(n) calls
                middle = len(batch) // 2
                await self._score(batch[:middle])
                await self._score(batch[middle:])
                return
            batch[0].future.set_exception(exc)
            return
        if self.observe:
            self.observe(table.num_rows)
        for b, part in zip(batch, parts, strict=True):  # `split` gives one part per request
            if not b.future.done():
                b.future.set_result(part)
