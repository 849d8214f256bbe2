"""An iterator read one item ahead in a thread: the next batches of the log come from the database
(and their Arrow streams are decoded, both mostly outside the GIL) while this batch is summarised."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """The items of ``items``, in order, each fetched while the one before is used. An exception of
    ``items`` is raised here, in its place; stopping early (``close``) stops the reader at its next item.

    >>> list(read_ahead(iter(range(5))))
    [0, 1, 2, 3, 4]
    """
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def reader() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        handoff.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(_END)
        except BaseException as exc:  # raised in the consumer, where it would have been
            handoff.put(exc)

    thread = threading.Thread(target=reader, name="matchday-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():  # unblock a reader waiting to hand over, then let it finish
            try:
                handoff.get_nowait()
            except queue.Empty:
                thread.join(0.05)
