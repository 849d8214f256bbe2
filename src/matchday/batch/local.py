"""The local engine: reader -> bounded queue -> scorer -> bounded queue -> writer, in one process.

Three threads overlap reading (Arrow decodes without the GIL), the model call (NumPy and
scikit-learn release it in their loops) and writing. The queues hold a few record batches each,
so peak memory depends on the batch size, never on the input's size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from matchday.batch.scoring import BatchScorer
from matchday.batch.sink import PartSink
from matchday.batch.source import BatchInput, Part

QUEUE_BATCHES = 3  # record batches waiting between two stages
_END = object()


class LocalEngine:
    name = "local"

    def run(
        self, source: BatchInput, parts: Sequence[Part], scorer: BatchScorer, sink: PartSink, batch_size: int
    ) -> None:
        """Score ``parts`` in order into ``sink``; the first error in any stage stops all three and is raised."""
        stop = threading.Event()
        read: queue.Queue[Any] = queue.Queue(QUEUE_BATCHES)
        scored: queue.Queue[Any] = queue.Queue(QUEUE_BATCHES)
        columns = scorer.columns()

        def reader() -> Iterator[tuple[Part, int, pa.RecordBatch | None]]:
            for part in parts:
                row = part.first_row
                for batch in source.read(part, columns, batch_size):
                    yield part, row, batch
                    row += batch.num_rows
                yield part, row, None  # the part is whole

        def score(item: tuple[Part, int, pa.RecordBatch | None]) -> tuple[Part, int, pa.Table | None]:
            part, row, batch = item
            if batch is None:
                return part, row, None
            return part, row, scorer.score(batch, sink.failures_allowed())

        threads = [
            threading.Thread(target=_stage, args=(reader, read, stop), name="batch-reader", daemon=True),
            threading.Thread(target=_map, args=(score, read, scored, stop), name="batch-scorer", daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            while True:
                item = _get(scored, stop)
                if item is _END:
                    break
                if isinstance(item, _Failure):
                    raise item.error
                part, row, table = item
                if table is None:
                    sink.finish(part)
                else:
                    sink.write(part, row, table)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue[Any], stop: threading.Event) -> Any:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _END


def _stage(produce: Callable[[], Iterator[Any]], out: queue.Queue[Any], stop: threading.Event) -> None:
    try:
        for item in produce():
            if not _put(out, item, stop):
                return
        _put(out, _END, stop)
    except BaseException as exc:  # handed to the writer, which raises it in the caller's thread
        _put(out, _Failure(exc), stop)


def _map(fn: Callable[[Any], Any], inbox: queue.Queue[Any], out: queue.Queue[Any], stop: threading.Event) -> None:
    try:
        while True:
            item = _get(inbox, stop)
            if item is _END or isinstance(item, _Failure):
                _put(out, item, stop)
                return
            if not _put(out, fn(item), stop):
                return
    except BaseException as exc:
        _put(out, _Failure(exc), stop)
