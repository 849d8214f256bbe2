"""The server's limits, part by part and without a server (issue 15, item 8): deadlines kept by one
timer, the body reader's stall timeout, model calls bounded in time (and what a stuck thread costs),
the micro-batcher on a timed-out call, the in-flight bound, and their settings.

`test_server_limits.py` runs them through a real `matchday serve`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from starlette.requests import ClientDisconnect

from matchday.config import ConfigError, load_settings
from matchday.serving.batching import MicroBatcher, Scored
from matchday.serving.body_reader import BodyReader
from matchday.serving.deadlines import Deadlines
from matchday.serving.errors import BodyTimeout, ModelStuck, ModelTimeout, PayloadTooLarge, headers_for, status_for
from matchday.serving.in_flight import InFlight
from matchday.serving.model_calls import ModelCalls

Message = dict[str, Any]


def run(make: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(make())  # type: ignore[arg-type]


# -- deadlines ---------------------------------------------------------------------------------


def test_a_deadline_fires_within_a_tick_and_a_forgotten_one_never() -> None:
    async def scenario() -> tuple[list[str], float]:
        fired: list[str] = []
        deadlines: Deadlines[str] = Deadlines(fired.append, tick=0.02)
        started = time.monotonic()
        deadlines.watch("late", 0.1)
        deadlines.watch("in time", 0.1)
        deadlines.forget("in time")
        while not fired:
            await asyncio.sleep(0.005)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.1)
        assert len(deadlines) == 0
        return fired, elapsed

    fired, elapsed = run(scenario)
    assert fired == ["late"]
    assert 0.1 <= elapsed < 0.3


def test_deadlines_keep_working_on_a_new_event_loop() -> None:
    """A timer armed on a loop that ended never fires: the next loop arms its own."""
    fired: list[int] = []
    deadlines: Deadlines[int] = Deadlines(fired.append, tick=0.01)

    async def abandon() -> None:
        deadlines.watch(1, 10.0)  # the loop ends with this one pending

    async def expire() -> None:
        deadlines.watch(2, 0.02)
        await asyncio.sleep(0.2)

    run(abandon)
    run(expire)
    assert fired == [2]


def test_a_failing_expiry_does_not_stop_the_others() -> None:
    seen: list[str] = []

    def expire(key: str) -> None:
        seen.append(key)
        if key == "bad":
            raise RuntimeError("boom")

    async def scenario() -> None:
        deadlines: Deadlines[str] = Deadlines(expire, tick=0.01)
        deadlines.watch("bad", 0.0)
        await asyncio.sleep(0.05)
        deadlines.watch("good", 0.0)
        await asyncio.sleep(0.05)

    run(scenario)
    assert seen == ["bad", "good"]


# -- the body reader ---------------------------------------------------------------------------


def messages(*parts: Message, then_stall: bool = False) -> Callable[[], Awaitable[Message]]:
    """An ASGI ``receive`` giving ``parts``, then waiting forever (a stalled client) or disconnecting."""
    queue = list(parts)

    async def receive() -> Message:
        if queue:
            await asyncio.sleep(0)
            return queue.pop(0)
        if then_stall:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    return receive


def chunk(body: bytes, more: bool) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


def test_a_whole_body_is_read_and_leaves_nothing_watched() -> None:
    reader = BodyReader(100, timeout=1.0)

    async def scenario() -> bytes:
        return await reader.read(messages(chunk(b'{"a": 1}', False)), "8")

    assert run(scenario) == b'{"a": 1}'
    assert len(reader._waits) == 0


def test_a_body_in_chunks_is_joined() -> None:
    reader = BodyReader(100, timeout=1.0)

    async def scenario() -> bytes:
        return await reader.read(messages(chunk(b"ab", True), chunk(b"", True), chunk(b"cd", False)), None)

    assert run(scenario) == b"abcd"


@pytest.mark.parametrize("parts", [(), (chunk(b'{"instances": [', True),)], ids=["no-body-yet", "partial-body"])
def test_a_stalled_body_is_a_408_after_the_timeout(parts: tuple[Message, ...]) -> None:
    reader = BodyReader(100, timeout=0.3)
    counted: list[int] = []
    reader.on_timeout = lambda: counted.append(1)

    async def scenario() -> float:
        started = time.monotonic()
        with pytest.raises(BodyTimeout, match=r"nothing more of it arrived for 0.3 s"):
            await reader.read(messages(*parts, then_stall=True), "100")
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]  # nothing left cancelled
        await asyncio.sleep(0.01)  # and the task goes on
        return time.monotonic() - started

    elapsed = run(scenario)
    assert 0.3 <= elapsed < 0.8
    assert counted == [1]
    assert status_for(BodyTimeout("x")) == 408 and headers_for(BodyTimeout("x")) == {"connection": "close"}


def test_a_trickling_body_is_not_timed_out_while_each_part_comes_in_time() -> None:
    reader = BodyReader(1000, timeout=0.2)

    async def trickle() -> Message:
        trickle.sent += 1  # type: ignore[attr-defined]
        await asyncio.sleep(0.1)
        return chunk(b"x", trickle.sent < 6)  # type: ignore[attr-defined]

    trickle.sent = 0  # type: ignore[attr-defined]

    async def scenario() -> bytes:
        return await reader.read(trickle, None)

    assert run(scenario) == b"x" * 6


def test_a_server_stopping_during_the_wait_is_a_cancellation_not_a_408() -> None:
    reader = BodyReader(100, timeout=5.0)

    async def scenario() -> None:
        task = asyncio.create_task(reader.read(messages(then_stall=True), None))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario)
    assert len(reader._waits) == 0 and not reader._expired


def test_limits_of_size_and_a_client_that_goes_away() -> None:
    reader = BodyReader(4, timeout=1.0)

    async def too_big_in_parts() -> bytes:
        return await reader.read(messages(chunk(b"abc", True), chunk(b"def", True), then_stall=True), None)

    async def announced() -> bytes:
        return await reader.read(messages(chunk(b"", False)), "5")

    async def gone() -> bytes:
        return await reader.read(messages(chunk(b"ab", True)), None)

    with pytest.raises(PayloadTooLarge, match="over the limit of 4 bytes"):
        run(too_big_in_parts)  # refused as soon as it passes the limit, without waiting for the rest
    with pytest.raises(PayloadTooLarge, match="the body is 5 bytes"):
        run(announced)
    with pytest.raises(ClientDisconnect):
        run(gone)


# -- model calls -------------------------------------------------------------------------------


class Gate:
    """A model that blocks while its gate is shut, and counts its calls."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.calls = 0

    def predict(self, value: int) -> int:
        self.calls += 1
        if value < 0:
            self.open.wait(10)
        return value * 2


def test_a_model_call_answers_or_raises_like_the_model() -> None:
    def predict(value: int) -> int:
        if value == 0:
            raise ValueError("zero")
        return value * 2

    calls: ModelCalls[int, int] = ModelCalls(predict, timeout=1.0)

    async def scenario() -> int:
        with pytest.raises(ValueError, match="zero"):
            await calls(0)
        return await calls(21)

    assert run(scenario) == 42
    calls.close()


def test_a_hung_call_times_out_then_the_version_fails_fast_until_a_stuck_call_returns() -> None:
    gate = Gate()
    timeouts: list[int] = []
    stuck: list[float] = []
    calls: ModelCalls[int, int] = ModelCalls(
        gate.predict,
        timeout=0.2,
        name="deployment 'd': m:1",
        max_stuck=2,
        on_timeout=lambda: timeouts.append(1),
        on_stuck=stuck.append,
    )

    async def scenario() -> None:
        started = time.monotonic()
        with pytest.raises(ModelTimeout, match=r"deployment 'd': m:1 did not answer within 0.2 s"):
            await calls(-1)
        assert time.monotonic() - started < 0.6
        assert await calls(1) == 2  # one hang: the next call has a thread of its own
        with pytest.raises(ModelTimeout):
            await calls(-1)
        assert calls.stuck == 2
        called = gate.calls
        with pytest.raises(ModelStuck, match="2 earlier call"):  # not called: failing fast
            await calls(1)
        assert gate.calls == called
        gate.open.set()  # the stuck calls return: their results are dropped, the version is called again
        deadline = time.monotonic() + 5
        while calls.stuck and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert calls.stuck == 0
        assert await calls(3) == 6

    run(scenario)
    calls.close()
    assert timeouts == [1, 1]
    assert stuck == [1, 1, -1, -1]  # a gauge's steps: 1, 2, 1, 0 stuck
    assert status_for(ModelTimeout("x")) == 504 and status_for(ModelStuck("x")) == 503


def test_model_threads_are_daemons_and_end_when_closed() -> None:
    calls: ModelCalls[int, int] = ModelCalls(lambda v: v, timeout=1.0, name="daemon-check")

    async def scenario() -> int:
        return await calls(1)

    run(scenario)
    threads = [t for t in threading.enumerate() if t.name == "matchday-model daemon-check"]
    assert len(threads) == 1 and threads[0].daemon  # a hung model never holds the process's exit
    calls.close()
    threads[0].join(2)
    assert not threads[0].is_alive()


def test_a_timed_out_micro_batch_fails_every_request_without_calling_again_in_halves() -> None:
    called: list[int] = []
    release = threading.Event()

    def predict(table: Any) -> Scored:
        called.append(table.num_rows)
        release.wait(5)
        return Scored(np.zeros(table.num_rows), None)

    batcher = MicroBatcher(ModelCalls(predict, timeout=0.2), max_batch_size=64)

    async def one(i: int) -> Any:
        try:
            return await batcher.score(pa.table({"x": [float(i)]}))
        except ModelTimeout as exc:
            return exc

    async def scenario() -> list[Any]:
        first = asyncio.create_task(one(0))  # takes the model; the next four queue behind it
        await asyncio.sleep(0.01)
        rest = [asyncio.create_task(one(i)) for i in range(1, 5)]
        results = await asyncio.gather(first, *rest)
        release.set()
        await batcher.close()
        return results

    results = run(scenario)
    assert all(isinstance(r, ModelTimeout) for r in results)
    assert called == [1, 4]  # the queued four were one call, which timed out whole: no halves


# -- in flight, and the settings ---------------------------------------------------------------


def test_in_flight_is_bounded_per_deployment() -> None:
    bound = InFlight(2)
    assert bound.enter("a") and bound.enter("a") and not bound.enter("a")
    assert bound.enter("b")  # another deployment has its own count
    bound.leave("a")
    assert bound.enter("a")
    for name in ("a", "a", "b"):
        bound.leave(name)
    assert bound.count("a") == 0 and bound._counts == {}  # no entry is kept for a name at zero


def test_the_three_settings_come_from_the_environment(tmp_path: Path) -> None:
    no_file = tmp_path / "matchday.yaml"
    env = {"MATCHDAY_BODY_TIMEOUT": "2.5", "MATCHDAY_MODEL_TIMEOUT": "7", "MATCHDAY_MAX_IN_FLIGHT": "16"}
    settings = load_settings(env, config_file=no_file)
    assert (settings.body_timeout, settings.model_timeout, settings.max_in_flight) == (2.5, 7.0, 16)
    defaults = load_settings({}, config_file=no_file)
    assert (defaults.body_timeout, defaults.model_timeout, defaults.max_in_flight) == (30.0, 30.0, 1024)
    with pytest.raises(ConfigError):
        load_settings({"MATCHDAY_MAX_IN_FLIGHT": "0"}, config_file=no_file)
