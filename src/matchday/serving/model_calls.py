"""A version's model calls: each on a thread of its own, bounded by ``timeout`` seconds.

A model that hangs (a deadlock, a call out to a service that never answers, an input that sends
it into a loop) must cost its own requests a 504, not every request the server holds. But a Python
thread cannot be stopped: a call that timed out goes on running. So:

- its requests are answered at once (504, `ModelTimeout`), and the call is *stuck*: counted, and
  its result dropped whenever it comes;
- its thread is left to it (it ends once the call returns); the next call gets a new thread, so
  one hang does not take the version down;
- while ``max_stuck`` calls are stuck, the version is not called at all: its requests fail fast
  (503, `ModelStuck`) instead of stacking more threads onto a model that no longer returns, until
  one of them returns.

The threads are daemon threads, not an executor's: `concurrent.futures` joins its threads when the
process exits (and asyncio's default executor when the loop closes), so one hung model would hold a
stopping server forever. The event loop's default executor stays free for the database and the
routes' other work.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from matchday.serving.deadlines import Deadlines
from matchday.serving.errors import ModelStuck, ModelTimeout

log = logging.getLogger("matchday.serving")
In = TypeVar("In")
Out = TypeVar("Out")
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_STUCK_CALLS = 2  # one hang is survived on a fresh thread; a second in a row stops calling the model


class _Call(Generic[In, Out]):
    """One call: what to run, and where its outcome goes (on the event loop)."""

    __slots__ = ("arg", "future", "loop", "started", "thread")

    def __init__(self, arg: In, loop: asyncio.AbstractEventLoop, thread: _Thread[In, Out]) -> None:
        self.arg = arg
        self.loop = loop
        self.future: asyncio.Future[Out] = loop.create_future()
        self.thread = thread
        self.started = time.monotonic()


class _Thread(Generic[In, Out]):
    """A daemon thread that makes calls in turn until it is retired."""

    def __init__(self, name: str, predict: Callable[[In], Out], settle: Callable[..., None]) -> None:
        self.predict = predict
        self.settle = settle
        self._calls: queue.SimpleQueue[_Call[In, Out] | None] = queue.SimpleQueue()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def submit(self, call: _Call[In, Out]) -> None:
        self._calls.put(call)

    def retire(self) -> None:
        """End once the call it is making (if any) returns."""
        self._calls.put(None)

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            result: Out | None = None
            error: Exception | None = None
            try:
                result = self.predict(call.arg)
            except Exception as exc:
                error = exc
            except BaseException as exc:  # (a SystemExit inside a model must not end this thread unanswered)
                error = RuntimeError(f"the model raised {exc!r}")
            try:
                call.loop.call_soon_threadsafe(self.settle, call, result, error)
            except RuntimeError:  # the loop is closed: the server stopped while the model ran
                pass


class ModelCalls(Generic[In, Out]):
    """``await calls(arg)`` is ``predict(arg)`` on a thread, or `ModelTimeout` after ``timeout`` seconds.

    Made for one caller at a time (a `MicroBatcher` calls its model one batch after another); calls
    made together would queue on one thread, and the wait counts toward their timeout.
    """

    def __init__(
        self,
        predict: Callable[[In], Out],
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        name: str = "the model",
        max_stuck: int = MAX_STUCK_CALLS,
        on_timeout: Callable[[], None] | None = None,
        on_stuck: Callable[[float], None] | None = None,
    ) -> None:
        """``name`` says which deployment and version in errors; ``on_timeout`` counts a timed-out call,
        ``on_stuck`` is told +1 when a call gets stuck and -1 when it returns (a gauge's ``inc``: calls of
        a version that was redeployed still return into the same series)."""
        self.predict = predict
        self.timeout = timeout
        self.name = name
        self.max_stuck = max_stuck
        self.on_timeout = on_timeout
        self.on_stuck = on_stuck
        self._thread: _Thread[In, Out] | None = None
        self._stuck: set[_Call[In, Out]] = set()
        self._waits: Deadlines[_Call[In, Out]] = Deadlines(self._expire)

    @property
    def stuck(self) -> int:
        """Calls that timed out and are still running."""
        return len(self._stuck)

    async def __call__(self, arg: In) -> Out:
        if len(self._stuck) >= self.max_stuck:
            raise ModelStuck(
                f"{self.name} was not called: {len(self._stuck)} earlier call(s) are still running past the "
                f"{self.timeout:g} s model timeout (a thread cannot be stopped); it is called again once one returns"
            )
        if self._thread is None:
            self._thread = _Thread(f"matchday-model {self.name}", self.predict, self._settle)
        call: _Call[In, Out] = _Call(arg, asyncio.get_running_loop(), self._thread)
        self._thread.submit(call)
        self._waits.watch(call, self.timeout)
        try:
            return await call.future
        finally:
            self._waits.forget(call)

    def close(self) -> None:
        """Let the thread end (after the call it is making, if any)."""
        if self._thread is not None:
            self._thread.retire()
            self._thread = None

    def _expire(self, call: _Call[In, Out]) -> None:
        """The call is late: answer its caller, leave its thread to it, and count it as stuck."""
        if call.future.done():  # its caller went away (the batcher closed)
            return
        call.future.set_exception(
            ModelTimeout(
                f"{self.name} did not answer within {self.timeout:g} s (the model timeout, "
                "MATCHDAY_MODEL_TIMEOUT): the requests of its micro-batch were not scored"
            )
        )
        self._stuck.add(call)
        call.thread.retire()
        if self._thread is call.thread:
            self._thread = None  # the next call gets a thread of its own
        log.error(
            "%s: a model call is still running after %g s (the model timeout); its requests answer 504 and "
            "its thread is left to finish; %d call(s) stuck",
            self.name,
            self.timeout,
            len(self._stuck),
        )
        if self.on_timeout is not None:
            self.on_timeout()
        if self.on_stuck is not None:
            self.on_stuck(1)

    def _settle(self, call: _Call[In, Out], result: Out | None, error: Exception | None) -> None:
        """A call returned (on the event loop): its answer, or the end of a stuck call."""
        if call in self._stuck:
            self._stuck.discard(call)
            log.warning(
                "%s: a model call that timed out returned after %.1f s; %d call(s) still stuck",
                self.name,
                time.monotonic() - call.started,
                len(self._stuck),
            )
            if self.on_stuck is not None:
                self.on_stuck(-1)
            return
        if call.future.done():  # its caller went away
            return
        if error is not None:
            call.future.set_exception(error)
        else:
            call.future.set_result(result)  # type: ignore[arg-type]  # (None only with an error)
