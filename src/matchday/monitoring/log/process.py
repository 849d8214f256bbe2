"""The server's prediction log writer in a process of its own.

Shipping rows to the database is Python work (SQLAlchemy, Arrow encoding) that, in the serving
process, took the GIL from the requests: a third of a loaded server's CPU per request. Here the
server keeps only a queue and one sender thread, which hands the rows, a few milliseconds' worth
at a time, down a pipe to a child process; the child runs an ordinary `PredictionLogWriter`
(journal, then database) with all of its guarantees.

What can be lost: when the server is killed, the rows not yet sent (one send interval, 10 ms by
default): what is in the pipe still reaches the child, which journals and ships it and exits at
the pipe's end. When the child dies, what it had not journaled (its own flush interval); the rows
the server could not hand to it go to a spool file that the next child adopts. A child that dies
is replaced (not sooner than `RESTART_SECONDS`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import multiprocessing
import queue
import signal
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import astuple
from pathlib import Path
from typing import Any

import orjson

from matchday.monitoring.log.spool import Spool
from matchday.monitoring.log.writer import PredictionLogWriter, WriterStats

log = logging.getLogger(__name__)
SEND_INTERVAL = 0.01  # seconds rows gather in the server before they go down the pipe
SEND_ROWS = 2000  # or this many rows, whichever comes first
STATS_INTERVAL = 0.25  # how often the child reports its writer's state
RESTART_SECONDS = 1.0  # a child that died is not replaced sooner than this
PIPE_BYTES = 1 << 20  # asked of the kernel for the rows' pipe (Linux; the default is 64 KiB)
_ROWS, _FLUSH = b"R", b"F"
_DUMP = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
OpenWriter = Callable[[], AbstractContextManager[PredictionLogWriter]]


class LogProcess:
    """The same face as `PredictionLogWriter` (``start``, ``submit``, ``flush``, ``stats``, ``close``),
    writing through a child process that ``open_writer`` (picklable) gives a writer in."""

    def __init__(
        self,
        open_writer: OpenWriter,
        spool_dir: Path,
        *,
        max_queue: int = 50_000,
        send_interval: float = SEND_INTERVAL,
    ) -> None:
        self.open_writer = open_writer
        self.spool_dir = spool_dir
        self.max_queue = max_queue
        self.send_interval = send_interval
        self._context = multiprocessing.get_context("spawn")  # fork would copy the event loop's threads
        self._cond = threading.Condition()
        self._queue: deque[tuple[float, dict[str, Any]] | int] = deque()  # rows, and flush marks (their number)
        self._queued_rows = 0
        self._submitted = 0
        self._flushes = 0  # flush marks handed out
        self._flushed: dict[int, bool] = {}  # the child's answers to flush marks
        self._child_stats = WriterStats(0, 0.0, 0, 0, True)
        self._spilled = 0  # rows the server put in spool files itself (no child to take them)
        self._process: Any = None
        self._rows_out: Any = None
        self._reader: threading.Thread | None = None
        self._sender = threading.Thread(target=self._run_sender, name="matchday-log-sender", daemon=True)
        self._stopping = False
        self._closed = False
        self._next_start = 0.0

    # -- the request side ---------------------------------------------------------------------
    def start(self) -> None:
        self._start_child()
        self._sender.start()

    def submit(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue rows for the child; never waits. Past ``max_queue`` (no child keeps up) they are spooled."""
        now = time.monotonic()
        with self._cond:
            self._submitted += len(rows)
            if not self._closed and self._queued_rows + len(rows) <= self.max_queue:
                self._queue.extend((now, r) for r in rows)
                self._queued_rows += len(rows)
                if self._queued_rows >= SEND_ROWS:
                    self._cond.notify_all()
                return
        self._spill(list(rows))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the rows submitted before this call are in the database (or set aside as refused)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushes += 1
            mark = self._flushes
            self._queue.append(mark)
            self._cond.notify_all()
            while mark not in self._flushed:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return self._flushed.pop(mark)

    def stats(self) -> WriterStats:
        with self._cond:
            first = next((item[0] for item in self._queue if isinstance(item, tuple)), None)
            lag = time.monotonic() - first if first is not None else 0.0
            child = self._child_stats
            return WriterStats(
                self._queued_rows + child.queue_depth,
                max(lag, child.lag_seconds),
                child.spooled_rows + self._spilled,
                child.written_rows,
                child.database_available,
                child.rejected_rows,
            )

    def close(self, timeout: float = 30.0) -> None:
        """Hand every queued row to the child, let it drain (within ``timeout``), then stop it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._sender.is_alive():
            self._sender.join(max(deadline - time.monotonic(), 0.0))
        if self._sender.is_alive():  # stuck writing to a child that does not read: end it, and the
            self._kill_child()  # write fails, and what it held is spooled for the next start
            self._sender.join(5.0)
        self._stop_child(max(deadline - time.monotonic(), 1.0))
        with self._cond:  # what the sender could not hand over: spooled for the next start
            leftover = [item[1] for item in self._queue if isinstance(item, tuple)]
            self._queue.clear()
            self._queued_rows = 0
            self._cond.notify_all()
        self._spill(leftover)
        with self._cond:
            self._closed = True  # a row submitted from now on (a request still in flight) is spooled at once

    # -- the sender thread --------------------------------------------------------------------
    def _run_sender(self) -> None:
        while True:
            with self._cond:
                self._gather()
                if self._stopping and not self._queue:
                    return
                items = list(self._queue)
                self._queue.clear()
                self._queued_rows = 0
            self._send(items)

    def _gather(self) -> None:
        """Wait (holding ``_cond``) until the queue holds something due: rows queued for
        ``send_interval``, ``SEND_ROWS`` rows, a flush mark, or a stop."""
        while not self._stopping:
            if self._queue:
                if self._queued_rows >= SEND_ROWS or any(isinstance(item, int) for item in self._queue):
                    return
                first = self._queue[0]
                age = time.monotonic() - first[0] if isinstance(first, tuple) else self.send_interval
                if age >= self.send_interval:
                    return
                self._cond.wait(self.send_interval - age)
            else:
                self._cond.wait()

    def _send(self, items: list[tuple[float, dict[str, Any]] | int]) -> None:
        """Rows and flush marks down the pipe, in order; a dead child's share is spooled and it is replaced."""
        rows: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, tuple):
                rows.append(item[1])
                continue
            self._write_rows(rows)
            rows = []
            if not self._write(_FLUSH + struct.pack("<q", item)):
                self._answer_flush(item, False)  # what it waited for was spooled: durable, not yet in the database
        self._write_rows(rows)

    def _write_rows(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        try:
            data = orjson.dumps(rows, option=_DUMP, default=str)
        except Exception:  # a row orjson cannot write: the spool's own fallback sets it aside
            self._spill(rows)
            return
        if not self._write(_ROWS + data):
            self._spill(rows)

    def _write(self, message: bytes) -> bool:
        """Send one message to the child (starting one if needed); False when no child took it."""
        for _ in range(2):  # a child found dead is replaced once per message at most
            rows_out = self._rows_out
            if rows_out is None:
                try:
                    if not self._start_child():
                        return False
                except Exception:  # no process can be started now: the caller spools, a later message tries again
                    log.exception("prediction log: cannot start the log process")
                    return False
                continue
            try:
                rows_out.send_bytes(message)
                return True
            except (BrokenPipeError, ConnectionResetError, OSError, ValueError):
                self._child_gone()
        return False

    # -- the child ----------------------------------------------------------------------------
    def _start_child(self) -> bool:
        if self._stopping and self._rows_out is None:
            return False
        now = time.monotonic()
        if now < self._next_start:
            return False
        self._next_start = now + RESTART_SECONDS
        rows_in, rows_out = self._context.Pipe(duplex=False)
        replies_in, replies_out = self._context.Pipe(duplex=False)
        _widen(rows_out)
        process = self._context.Process(
            target=run_log_process,
            args=(self.open_writer, rows_in, replies_out),
            name="matchday-log",
            # daemonic: ended at a normal interpreter exit that skipped `close` (its journal is adopted later);
            # a server killed outright leaves it running until it has shipped what it was sent
            daemon=True,
        )
        process.start()
        rows_in.close()  # the child holds the only reading end now
        replies_out.close()
        self._process, self._rows_out = process, rows_out
        self._reader = threading.Thread(
            target=self._read_replies, args=(replies_in,), name="matchday-log-replies", daemon=True
        )
        self._reader.start()
        return True

    def _child_gone(self) -> None:
        process = self._process
        if process is not None:
            process.join(0.5)
            log.warning("prediction log process (pid %s) exited with code %s", process.pid, process.exitcode)
        self._drop_child()

    def _drop_child(self) -> None:
        if self._rows_out is not None:
            with contextlib.suppress(OSError):
                self._rows_out.close()
        self._rows_out = None
        self._process = None

    def _kill_child(self) -> None:
        process = self._process
        if process is not None and process.is_alive():
            log.warning("prediction log process (pid %s) does not take rows; stopped", process.pid)
            process.kill()

    def _stop_child(self, timeout: float) -> None:
        process = self._process
        self._drop_child()  # the end of the pipe: the child drains what it holds and exits
        if process is None:
            return
        process.join(timeout)
        if process.is_alive():
            log.warning("prediction log process did not finish in %.0f s; its spool stays for the next start", timeout)
            process.kill()  # (it ignores SIGTERM: see `run_log_process`)
            process.join(5.0)
        if self._reader is not None:
            self._reader.join(5.0)

    def _read_replies(self, replies: Any) -> None:
        """The child's reports (its writer's state, answers to flush marks) until its end of the pipe."""
        with replies:
            while True:
                try:
                    kind, *rest = replies.recv()
                except (EOFError, OSError):
                    return
                with self._cond:
                    if kind == "stats":
                        self._child_stats = WriterStats(*rest[0])
                    elif kind == "flushed":
                        self._flushed[rest[0]] = rest[1]
                    self._cond.notify_all()

    def _answer_flush(self, mark: int, ok: bool) -> None:
        with self._cond:
            self._flushed[mark] = ok
            self._cond.notify_all()

    def _spill(self, rows: list[dict[str, Any]]) -> None:
        """Rows no child took, in a spool file of their own left for the next child to adopt."""
        if not rows:
            return
        spool = Spool(self.spool_dir)
        try:
            spool.append(rows)
        finally:
            spool.close()  # released, not removed: its rows wait for an adopter
        with self._cond:
            self._spilled += len(rows)
        log.warning("prediction log: %d row(s) spooled in %s for the next writer", len(rows), spool.path.name)


def _widen(connection: Any) -> None:
    """A bigger pipe, so that a child busy for a moment does not make the sender wait."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(connection.fileno(), 1031, PIPE_BYTES)  # F_SETPIPE_SZ


# -- the child process ----------------------------------------------------------------------------
def run_log_process(open_writer: OpenWriter, rows_in: Any, replies: Any) -> None:
    """The log process: a writer fed from the pipe until its end (the server closed it, or died).

    A signal to the whole group (Ctrl-C, a supervisor's SIGTERM) reaches this process too: the server,
    stopping, closes the pipe after its last rows, and a server that is gone closed it already, so
    both are ignored here: this process ends at the pipe's end, never with rows still in it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stopped = threading.Event()
    send_lock = threading.Lock()

    def reply(*message: Any) -> None:
        with send_lock, contextlib.suppress(OSError, ValueError):
            replies.send(message)

    with open_writer() as writer:
        writer.start()
        flushes: queue.Queue[int | None] = queue.Queue()
        helpers = [
            threading.Thread(target=_report_stats, args=(writer, reply, stopped), daemon=True),
            threading.Thread(target=_answer_flushes, args=(writer, flushes, reply), daemon=True),
        ]
        for helper in helpers:
            helper.start()
        try:
            for kind, payload in _messages(rows_in):
                if kind == _ROWS:
                    writer.submit(orjson.loads(payload))
                elif kind == _FLUSH:
                    flushes.put(struct.unpack("<q", payload)[0])
        finally:
            flushes.put(None)
            writer.close()
            stopped.set()
            for helper in helpers:
                helper.join(5.0)
            reply("stats", astuple(writer.stats()))
            replies.close()


def _messages(rows_in: Any) -> Iterator[tuple[bytes, bytes]]:
    """(kind, payload) of each message, until the pipe's end."""
    while True:
        try:
            message = rows_in.recv_bytes()
        except (EOFError, OSError):
            return
        yield message[:1], message[1:]


def _report_stats(writer: PredictionLogWriter, reply: Callable[..., None], stopped: threading.Event) -> None:
    """The writer's state every `STATS_INTERVAL`, and at once when the database comes or goes."""
    sent, due = None, 0.0
    while not stopped.wait(0.02):
        stats = writer.stats()
        if sent is None or stats.database_available != sent.database_available or time.monotonic() >= due:
            reply("stats", astuple(stats))
            sent, due = stats, time.monotonic() + STATS_INTERVAL


def _answer_flushes(writer: PredictionLogWriter, flushes: queue.Queue[int | None], reply: Callable[..., None]) -> None:
    while (mark := flushes.get()) is not None:
        reply("flushed", mark, writer.flush(30.0))
