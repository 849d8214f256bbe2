"""The monitoring tick reads the log one batch ahead: same items in the same order, the reader's
errors raised where they would have been, and a consumer that stops early stops the reader."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from matchday.monitoring.windows.read_ahead import read_ahead


def test_items_come_in_order_and_the_next_is_read_while_one_is_used() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for i in range(6):
            produced.append(i)
            yield i

    seen = []
    for item in read_ahead(items()):
        deadline = time.monotonic() + 5
        while len(produced) < min(item + 2, 6) and time.monotonic() < deadline:
            time.sleep(0.001)  # the reader fetches the next one meanwhile
        assert len(produced) >= min(item + 2, 6)
        seen.append(item)
    assert seen == list(range(6))


def test_an_error_of_the_reader_is_raised_in_the_consumer_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise ConnectionError("the database went away")

    seen = []
    with pytest.raises(ConnectionError, match="went away"):
        for item in read_ahead(items()):
            seen.append(item)
    assert seen == [1]


def test_stopping_early_stops_the_reader() -> None:
    finished = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            finished.set()

    for item in read_ahead(items()):
        if item == 2:
            break
    assert not any(t.name == "matchday-read-ahead" and t.is_alive() for t in threading.enumerate())
