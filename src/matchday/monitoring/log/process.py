"""The server's prediction log writer in a process of its own.

Shipping rows to the database is Python work (SQLAlchemy, Arrow encoding) that, in the serving
process, took the GIL from the requests: a third of a loaded server's CPU per request. Here the
server keeps only a queue and one sender thread, which hands the rows, a few milliseconds' worth
at a time, down a pipe to a child process; the child runs an ordinary `PredictionLogWriter`,
reads the pipe as fast as it fills (a thread of its own), journals what came while the last fsync
ran in one write (fsynced), acknowledges each message, and ships from the journal. A slow disk
therefore never leaves rows in the pipe, or in the server behind a full pipe (64 kB: about two
hundred rows), where a kill -9 of the server would lose them.

What can be lost: when the server is killed, the rows not yet sent (one send interval, 10 ms by
default): what is in the pipe still reaches the child, which journals and ships it and exits at
the pipe's end. When the child dies, nothing: the server keeps every message until the child has
journaled it, and spools the unacknowledged ones for the next child (a row journaled twice is
logged once: the insert skips a known request id). A child that dies is replaced (not sooner than
`RESTART_SECONDS`); rows no child can take wait in a spool file that the next one adopts.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import multiprocessing
import os
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

from matchday.monitoring.log.spool import Spool, dumps_rows, encoding_error, set_aside
from matchday.monitoring.log.writer import PredictionLogWriter, WriterStats

log = logging.getLogger(__name__)
SEND_INTERVAL = 0.05  # seconds rows gather in the server before they go down the pipe (the kill -9 bound)
SEND_ROWS = 2000  # or this many rows, whichever comes first
STATS_INTERVAL = 0.25  # how often the child reports its writer's state
RESTART_SECONDS = 1.0  # a child that died is not replaced sooner than this
PIPE_BYTES = 1 << 20  # asked of the kernel for the rows' pipe (Linux; the default is 64 KiB)
_ROWS, _FLUSH = b"R", b"F"
OpenWriter = Callable[[], AbstractContextManager[PredictionLogWriter]]
Item = tuple[float, dict[str, Any]] | int  # a queued row (with when it came), or a flush mark (its number)


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
        self._queue: deque[Item] = deque()
        self._queued_rows = 0
        self._unacked: deque[tuple[int, list[dict[str, Any]]]] = deque()  # sent, not yet journaled by the child
        self._sequence = 0  # messages of rows sent
        self._flushes = 0  # flush marks handed out
        self._awaiting: set[int] = set()  # flush marks the current child has not answered
        self._flushed: dict[int, bool] = {}  # answers to flush marks
        self._child_stats = WriterStats(0, 0.0, 0, 0, True)
        self._written_before = 0  # rows shipped by children before the current one
        self._generation = 0  # which child the replies come from
        self._child_died: int | None = None  # the generation of a child found dead by its reply reader
        self._process: Any = None
        self._rows_out: Any = None
        self._readers: list[threading.Thread] = []
        self._spill_lock = threading.Lock()
        self._spill_spool: Spool | None = None  # rows no child took, held until a child can adopt them
        self._spill_rows = 0
        self._spilled_since_flush = False
        self._sender = threading.Thread(target=self._run_sender, name="matchday-log-sender", daemon=True)
        self._stopping = False
        self._closed = False
        self._next_start = 0.0

    # -- the request side ---------------------------------------------------------------------
    def start(self) -> None:
        self._start_child()
        self._sender.start()
        # an exit that skips `close` (a failed start-up): the pipe's end lets the child drain and exit,
        # before multiprocessing's own exit hook waits for it
        atexit.register(self._close_pipe)

    def submit(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue rows for the child; never waits. Past ``max_queue`` (no child keeps up) they are spooled."""
        now = time.monotonic()
        with self._cond:
            if not self._closed and self._queued_rows + len(rows) <= self.max_queue:
                first = not self._queue
                self._queue.extend((now, r) for r in rows)
                self._queued_rows += len(rows)
                if first or self._queued_rows >= SEND_ROWS:  # the sender's interval starts (or is over)
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
                if remaining <= 0 or self._closed:
                    self._awaiting.discard(mark)
                    with contextlib.suppress(ValueError):
                        self._queue.remove(mark)
                    return False
                self._cond.wait(min(remaining, 0.05))
            return self._flushed.pop(mark)

    def stats(self) -> WriterStats:
        with self._cond:
            first = next((item[0] for item in self._queue if isinstance(item, tuple)), None)
            lag = time.monotonic() - first if first is not None else 0.0
            child = self._child_stats
            return WriterStats(
                self._queued_rows + sum(len(rows) for _, rows in self._unacked) + child.queue_depth,
                max(lag, child.lag_seconds),
                child.spooled_rows + self._spill_rows,
                self._written_before + child.written_rows,
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
        with self._cond:  # what the sender could not hand over, or the child did not journal
            leftover = [item[1] for item in self._queue if isinstance(item, tuple)]
            leftover += [row for _, rows in self._unacked for row in rows]
            self._queue.clear()
            self._unacked.clear()
            self._queued_rows = 0
            self._closed = True  # a row submitted from now on (a request still in flight) is spooled at once
            self._cond.notify_all()
        self._spill(leftover)
        self._release_spill()
        atexit.unregister(self._close_pipe)

    # -- the sender thread --------------------------------------------------------------------
    def _run_sender(self) -> None:
        while True:
            with self._cond:
                self._gather()
                died, self._child_died = self._child_died, None
                if self._stopping and not self._queue and died is None:
                    return
                items = list(self._queue)
                self._queue.clear()
                self._queued_rows = 0
            if died is not None and died == self._generation:  # (not a child already replaced)
                self._child_gone()
            try:
                self._send(items)
            except Exception:  # never let the sender die: the rows are spooled, loudly
                log.exception("prediction log: sending rows to the log process failed; spooling them")
                self._spill([item[1] for item in items if isinstance(item, tuple)])

    def _gather(self) -> None:
        """Wait (holding ``_cond``) until something is due: rows queued for ``send_interval``,
        ``SEND_ROWS`` rows, a flush mark, a dead child, or a stop."""
        while not self._stopping and self._child_died is None:
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

    def _send(self, items: list[Item]) -> None:
        """Rows and flush marks down the pipe, in order; a dead child's share is spooled and it is replaced."""
        rows: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, tuple):
                rows.append(item[1])
                continue
            self._send_rows(rows)
            rows = []
            self._send_flush(item)
        self._send_rows(rows)

    def _send_rows(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        data = self._dumped(rows)
        if data is None:
            return
        with self._cond:
            self._sequence += 1
            sequence = self._sequence
            self._unacked.append((sequence, rows))  # until the child says it journaled them
        if not self._write(_ROWS + struct.pack("<q", sequence) + data):
            self._child_gone()  # spools the unacknowledged rows, these among them

    def _send_flush(self, mark: int) -> None:
        adopt = self._spilled_since_flush  # rows spooled here since the last mark: the child ships them first
        if adopt:
            self._release_spill()
            self._spilled_since_flush = False
        with self._cond:
            self._awaiting.add(mark)
        if not self._write(_FLUSH + struct.pack("<q?", mark, adopt)):
            self._child_gone()  # the mark goes to the next child, after what this one did not journal

    def _dumped(self, rows: list[dict[str, Any]]) -> bytes | None:
        """The rows as one JSON array; a row orjson cannot write (even as text) is set aside, with why."""
        try:
            return dumps_rows(rows)
        except Exception:
            kept = self._writable(rows)
            return dumps_rows(kept) if kept else None

    def _writable(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows JSON can hold; the others kept in ``rejected-server-<pid>.jsonl`` with the reason."""
        kept = []
        for row in rows:
            error = encoding_error(row)
            if error is None:
                kept.append(row)
                continue
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            path = self.spool_dir / f"rejected-server-{os.getpid()}.jsonl"
            set_aside(path, row, error)
            log.error(
                "prediction log: row %s cannot be written (%s); kept in %s", row.get("request_id"), error, path.name
            )
        return kept

    def _write(self, message: bytes) -> bool:
        """Send one message to the child (starting one if none runs); False when no child took it."""
        if self._rows_out is None:
            wait = self._next_start - time.monotonic()
            if wait > 0 and not self._stopping:  # a child died just now: the next one after the pause
                time.sleep(min(wait, RESTART_SECONDS))
            try:
                if not self._start_child():
                    return False
            except Exception:  # no process can be started now: the caller spools, a later message tries again
                log.exception("prediction log: cannot start the log process")
                return False
        try:
            self._rows_out.send_bytes(message)
            return True
        except (OSError, ValueError, TypeError):  # a dead child (or a pipe closed at exit)
            return False

    # -- the child ----------------------------------------------------------------------------
    def _start_child(self) -> bool:
        now = time.monotonic()
        if (self._stopping and self._rows_out is None) or now < self._next_start:
            return False
        self._next_start = now + RESTART_SECONDS
        self._release_spill()  # the new child adopts what was spooled meanwhile
        rows_in, rows_out = self._context.Pipe(duplex=False)
        replies_in, replies_out = self._context.Pipe(duplex=False)
        _widen(rows_out)
        process = self._context.Process(
            target=run_log_process,
            args=(self.open_writer, rows_in, replies_out),
            name="matchday-log",
            # daemonic: multiprocessing's exit hook stops it if `close` was skipped (after `_close_pipe`
            # let it drain); a server killed outright leaves it running until it has shipped what it was sent
            daemon=True,
        )
        process.start()
        rows_in.close()  # the child holds the only reading end now
        replies_out.close()
        with self._cond:
            self._generation += 1
            self._child_stats = WriterStats(0, 0.0, 0, 0, self._child_stats.database_available)
            self._process, self._rows_out = process, rows_out
        reader = threading.Thread(
            target=self._read_replies,
            args=(replies_in, self._generation),
            name="matchday-log-replies",
            daemon=True,
        )
        reader.start()
        self._readers = [r for r in self._readers if r.is_alive()] + [reader]
        return True

    def _child_gone(self) -> None:
        """The child is dead (or not reading): what it did not journal is spooled, its flush marks
        answered (not in the database), and the next message starts another."""
        process = self._process
        if process is not None:
            process.join(0.5)
            if process.is_alive():
                process.kill()
                process.join(5.0)
            log.warning("prediction log process (pid %s) exited with code %s", process.pid, process.exitcode)
        with self._cond:
            unjournaled = [row for _, rows in self._unacked for row in rows]
            self._unacked.clear()
            for mark in sorted(self._awaiting, reverse=True):  # asked again of the next child (after the spool)
                if self._stopping:
                    self._flushed[mark] = False
                else:
                    self._queue.appendleft(mark)
            self._awaiting.clear()
            self._written_before += self._child_stats.written_rows
            self._child_stats = WriterStats(0, 0.0, 0, 0, self._child_stats.database_available)
            self._generation += 1  # late replies of the dead child are ignored
            self._cond.notify_all()
        self._drop_child()
        self._spill(unjournaled)

    def _drop_child(self) -> None:
        rows_out, self._rows_out, self._process = self._rows_out, None, None
        if rows_out is not None:
            with contextlib.suppress(OSError):
                rows_out.close()

    def _close_pipe(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self._rows_out.close()

    def _kill_child(self) -> None:
        process = self._process
        if process is not None and process.is_alive():
            log.warning("prediction log process (pid %s) does not take rows; stopped", process.pid)
            process.kill()

    def _stop_child(self, timeout: float) -> None:
        process = self._process
        self._drop_child()  # the end of the pipe: the child journals what it holds, ships it and exits
        if process is None:
            return
        process.join(timeout)
        if process.is_alive():
            log.warning("prediction log process did not finish in %.0f s; its spool stays for the next start", timeout)
            process.kill()  # (it ignores SIGTERM: see `run_log_process`)
            process.join(5.0)
        for reader in self._readers:  # its last acknowledgements, read to the pipe's end
            reader.join(5.0)

    def _read_replies(self, replies: Any, generation: int) -> None:
        """The child's reports (its writer's state, journaled messages, answers to flush marks) until
        its end of the pipe; there, a child the server did not stop has died."""
        with replies:
            while True:
                try:
                    kind, *rest = replies.recv()
                except (EOFError, OSError):
                    break
                with self._cond:
                    if generation != self._generation:
                        continue
                    if kind == "journaled":
                        while self._unacked and self._unacked[0][0] <= rest[0]:
                            self._unacked.popleft()
                    elif kind == "stats":
                        self._child_stats = WriterStats(*rest[0])
                    elif kind == "flushed" and rest[0] in self._awaiting:
                        self._awaiting.discard(rest[0])
                        self._flushed[rest[0]] = rest[1]
                    self._cond.notify_all()
        with self._cond:
            if generation == self._generation and self._rows_out is not None:
                self._child_died = generation  # the sender spools what it did not journal and starts another
                self._cond.notify_all()

    # -- rows no child took -------------------------------------------------------------------
    def _spill(self, rows: list[dict[str, Any]]) -> None:
        """Rows in a spool file of the server's, released (for a child to adopt) at the next child's
        start, flush mark or `close`."""
        if not rows:
            return
        with self._spill_lock:
            if self._spill_spool is None:
                self._spill_spool = Spool(self.spool_dir)
                log.warning("prediction log: rows the log process cannot take go to %s", self._spill_spool.path.name)
            try:
                try:
                    self._spill_spool.append(rows)
                except OSError:
                    raise
                except Exception:  # a row JSON cannot hold: set aside, the others spooled
                    rows = self._writable(rows)
                    self._spill_spool.append(rows)
            except Exception:  # the disk itself: nothing else can keep them
                log.exception("prediction log: %d row(s) could not be spooled and are lost", len(rows))
                return
            self._spill_rows += len(rows)
            self._spilled_since_flush = True
        if self._closed:  # no child will ask for it: released at once, for the next server's to adopt
            self._release_spill()

    def _release_spill(self) -> None:
        with self._spill_lock:
            if self._spill_spool is not None:
                self._spill_spool.close()  # released, not removed: its rows wait for an adopter
                self._spill_spool, self._spill_rows = None, 0


def _widen(connection: Any) -> None:
    """A bigger pipe, so that a child busy for a moment does not make the sender wait."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(connection.fileno(), 1031, PIPE_BYTES)  # F_SETPIPE_SZ


# -- the child process ----------------------------------------------------------------------------
def run_log_process(open_writer: OpenWriter, rows_in: Any, replies: Any) -> None:
    """The log process: each message journaled (fsynced) and acknowledged as it arrives, until the
    pipe's end (the server closed it, or died); then what is journaled is shipped and it exits.

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
        try:
            writer.store.warm()  # the first rows after a start are then as quick as the rest
        except Exception as exc:  # the database is away: it is tried again when there are rows
            log.info("prediction log process: the database could not be reached at start (%s)", exc)
        flushes: queue.Queue[tuple[int, bool] | None] = queue.Queue()
        helpers = [
            threading.Thread(target=_report_stats, args=(writer, reply, stopped), daemon=True),
            threading.Thread(target=_answer_flushes, args=(writer, flushes, reply), daemon=True),
        ]
        for helper in helpers:
            helper.start()
        arrived: queue.Queue[tuple[bytes, bytes] | None] = queue.Queue()
        reader = threading.Thread(target=_drain, args=(rows_in, arrived), name="matchday-log-pipe", daemon=True)
        reader.start()
        try:
            for group in _in_groups(arrived):
                if group[0][0] == _ROWS:  # every message that came while the last fsync ran: one journal write
                    rows: list[Any] = []
                    for _, payload in group:
                        rows.extend(orjson.loads(payload[8:]))
                    writer.journal(rows)
                    for _, payload in group:
                        reply("journaled", struct.unpack("<q", payload[:8])[0])
                else:
                    for _, payload in group:
                        flushes.put(struct.unpack("<q?", payload))
        finally:
            flushes.put(None)
            writer.close()
            stopped.set()
            for helper in helpers:
                helper.join(5.0)
            reply("stats", astuple(writer.stats()))
            replies.close()


def _drain(rows_in: Any, arrived: queue.Queue[tuple[bytes, bytes] | None]) -> None:
    """Read the pipe as fast as it fills, whatever the disk is doing: a row still in the pipe, or in the
    server's memory because the pipe was full while a slow fsync held the journal, dies with a killed
    server; a row in this process's memory is journaled after it. None at the pipe's end."""
    try:
        while True:
            try:
                message = rows_in.recv_bytes()
            except (EOFError, OSError):
                return
            arrived.put((message[:1], message[1:]))
    finally:
        arrived.put(None)


def _in_groups(arrived: queue.Queue[tuple[bytes, bytes] | None]) -> Iterator[list[tuple[bytes, bytes]]]:
    """The messages in order, consecutive ones of one kind together (what has come so far), until the end."""
    pending: tuple[bytes, bytes] | None = None
    while True:
        first = pending if pending is not None else arrived.get()
        pending = None
        if first is None:
            return
        group = [first]
        while True:
            try:
                more = arrived.get_nowait()
            except queue.Empty:
                break
            if more is None or more[0] != first[0]:
                pending = more
                if more is None:
                    yield group
                    return
                break
            group.append(more)
        yield group


def _report_stats(writer: PredictionLogWriter, reply: Callable[..., None], stopped: threading.Event) -> None:
    """The writer's state every `STATS_INTERVAL`, and at once when the database comes or goes."""
    sent, due = None, 0.0
    while not stopped.wait(0.02):
        stats = writer.stats()
        if sent is None or stats.database_available != sent.database_available or time.monotonic() >= due:
            reply("stats", astuple(stats))
            sent, due = stats, time.monotonic() + STATS_INTERVAL


def _answer_flushes(
    writer: PredictionLogWriter, flushes: queue.Queue[tuple[int, bool] | None], reply: Callable[..., None]
) -> None:
    while (request := flushes.get()) is not None:
        mark, adopt = request
        if adopt:  # rows the server spooled itself: in the database before the answer
            writer.adopt_orphans()
        reply("flushed", mark, writer.flush(30.0))
