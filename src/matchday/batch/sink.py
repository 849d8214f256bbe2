"""Where scored tables go: one output file per input part (and a rejects file when it had any),
each written under a temporary name and renamed when the part is whole, then the manifest.

Both engines feed it the scored tables of one part after another, in order. It keeps the reject
rate (running counts, written by the writer and read by the scorer thread under a lock), and hands
the scored rows to the deployment's log when the job has one.

Rejects files carry the job's id (``rejects-<job>-<part>.parquet``), so jobs sharing a ``--rejects``
folder never overwrite each other's; a resumed job has the same id, so its names are stable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from matchday.batch.durable import move_durably
from matchday.batch.errors import RejectRateExceeded
from matchday.batch.manifest import Manifest, PartDone, write_manifest
from matchday.batch.scoring import REASON, ROW_ID, VALUES, OutputLayout
from matchday.batch.source import Part

MIN_ROWS_FOR_RATE = 1000  # the reject rate is judged once this many rows were seen (and at the end)
REASONS_SHOWN = 5  # the first rejects' reasons named in the error that stops a job
COMPRESSION = "snappy"  # the fastest to write of Parquet's common codecs, and what Spark writes by default


class RowFeed(Protocol):
    """Scored rows handed on as they are written (the deployment's log)."""

    def add(self, rows: np.ndarray, ids: pa.Array | None, scored: pa.Table) -> None: ...

    def flush(self) -> None: ...


@dataclass
class Folder:
    fs: fsspec.AbstractFileSystem
    path: str

    def temporary(self, name: str, job_id: str) -> str:
        return f"{self.path}/.{name}.{job_id[:8]}.tmp"


class PartSink:
    """Writes each part's scored rows and rejects, atomically, and records the part in the manifest."""

    def __init__(
        self,
        output: Folder,
        rejects: Folder,
        manifest: Manifest,
        layout: OutputLayout,
        id_column: str | None,
        max_reject_rate: float,
        feed: RowFeed | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.output, self.rejects, self.manifest = output, rejects, manifest
        self.layout, self.id_column, self.max_reject_rate = layout, id_column, max_reject_rate
        self.feed, self.progress = feed, progress
        self._part: Part | None = None
        self._writer: pq.ParquetWriter | None = None
        self._rejects_writer: pq.ParquetWriter | None = None
        self._rows = self._rejected = 0  # the part in progress
        self._id_type: pa.DataType | None = None  # the id column's type, as the input has it
        self._counts = threading.Lock()
        self._seen = manifest.rows_done  # rows read by the job (its finished parts and the one in progress)
        self._all_rejected = manifest.rejected
        self._reasons: list[str] = []  # the first rejects of this run, for the error that stops it

    # -- the engines' calls ------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        """Rows seen and rejected by the job so far (finished parts, earlier runs' too, and the current one)."""
        with self._counts:
            return self._seen, self._all_rejected

    def failures_allowed(self) -> int:
        """How many more rows may fail before the job is past its reject rate (at the least row count).
        Called from the scorer thread while the writer writes: it reads the running counts only."""
        seen, rejected = self.counts()
        return max(int(self.max_reject_rate * max(seen, MIN_ROWS_FOR_RATE)) - rejected, 0)

    def write(self, part: Part, first_row: int, scored: pa.Table) -> None:
        """Scored rows of ``part`` whose first is row number ``first_row`` of the input."""
        if self._part is not part:
            if self.id_column:
                self._id_type = scored.column(ROW_ID).type
            self._open(part)
        n = scored.num_rows
        ids = scored.column(ROW_ID) if self.id_column else pa.array(np.arange(first_row, first_row + n))
        rejected = scored.column(REASON).is_valid()
        bad = int(pc.sum(rejected).as_py() or 0)
        accepted = scored if not bad else scored.filter(pc.invert(rejected))
        accepted_ids = ids if not bad else ids.filter(pc.invert(rejected))
        assert self._writer is not None
        self._writer.write_table(self._output_table(accepted_ids, accepted))
        if bad:
            self._write_rejects(part, ids.filter(rejected), scored.filter(rejected), first_row, rejected)
        if self.feed is not None and accepted.num_rows:
            rows = np.arange(first_row, first_row + n)
            if bad:
                rows = rows[~rejected.to_numpy(zero_copy_only=False)]
            self.feed.add(rows, accepted_ids if self.id_column else None, accepted)
        self._rows += n
        self._rejected += bad
        with self._counts:
            self._seen += n
            self._all_rejected += bad
        if self.progress is not None:
            self.progress(n, bad)
        self.check_rate(final=False)

    def finish(self, part: Part) -> None:
        """The part is whole: its files renamed into place, its log rows flushed, then the manifest."""
        if self._part is not part:
            self._open(part)  # a part without rows still gets its (empty) output file
        assert self._writer is not None
        self._writer.close()
        self._writer = None
        name = f"part-{part.key}.parquet"
        move_durably(self.output.fs, self.output.temporary(name, self.manifest.job_id), f"{self.output.path}/{name}")
        rejects_path = None
        if self._rejects_writer is not None:
            self._rejects_writer.close()
            self._rejects_writer = None
            rejects_path = f"{self.rejects.path}/{self._rejects_name(part)}"
            move_durably(
                self.rejects.fs, self.rejects.temporary(self._rejects_name(part), self.manifest.job_id), rejects_path
            )
        stopped = f"{self.rejects.path}/{self._rejects_name(part, stopped=True)}"
        if self.rejects.fs.exists(stopped):  # an earlier run stopped in this part: its rejects are redone
            self.rejects.fs.rm(stopped)
        if self.feed is not None:
            self.feed.flush()
        self.manifest.parts[part.key] = PartDone(
            self._rows, self._rows - self._rejected, self._rejected, name, rejects_path
        )
        write_manifest(self.output.fs, self.output.path, self.manifest)
        self._part, self._rows, self._rejected = None, 0, 0

    def abort(self, *, keep_rejects: bool = False) -> None:
        """Close and remove the unfinished part's temporary output (its rows will be scored again).

        With ``keep_rejects`` (the reject rate stopped the job) its rejects so far are kept, as
        ``rejects-<job>-<part>.stopped.parquet``: they are why the job stopped. The run that finishes
        the part replaces them."""
        errors = []
        for writer in (self._writer, self._rejects_writer):
            if writer is not None:
                try:
                    writer.close()
                except Exception as exc:  # the output goes anyway; rejects that cannot be closed go too
                    errors.append(exc)
        if self._part is not None:
            part = self._part
            temporary = self.output.temporary(f"part-{part.key}.parquet", self.manifest.job_id)
            if self.output.fs.exists(temporary):
                self.output.fs.rm(temporary)
            temporary = self.rejects.temporary(self._rejects_name(part), self.manifest.job_id)
            if self.rejects.fs.exists(temporary):
                if keep_rejects and self._rejects_writer is not None and not errors:
                    stopped = f"{self.rejects.path}/{self._rejects_name(part, stopped=True)}"
                    move_durably(self.rejects.fs, temporary, stopped)
                else:
                    self.rejects.fs.rm(temporary)
        self._writer = self._rejects_writer = None
        with self._counts:
            self._seen -= self._rows
            self._all_rejected -= self._rejected
        self._part, self._rows, self._rejected = None, 0, 0

    def check_rate(self, *, final: bool) -> None:
        seen, rejected = self.counts()
        if seen == 0 or (seen < MIN_ROWS_FOR_RATE and not final):
            return
        if rejected / seen > self.max_reject_rate:
            raise RejectRateExceeded(
                f"{rejected} of {seen} rows rejected ({rejected / seen:.2%}), more than --max-reject-rate "
                f"{self.max_reject_rate:.2%}: the job stopped",
                [
                    *self._reasons,
                    f"the reasons are in {self.rejects.path} (the stopped part's in *.stopped.parquet)",
                    "fix the input, or raise --max-reject-rate, and run again with --resume",
                ],
            )

    # -- inside ------------------------------------------------------------------------------
    def _rejects_name(self, part: Part, *, stopped: bool = False) -> str:
        return f"rejects-{self.manifest.job_id}-{part.key}{'.stopped' if stopped else ''}.parquet"

    def _open(self, part: Part) -> None:
        self._part, self._rows, self._rejected = part, 0, 0
        self.output.fs.makedirs(self.output.path, exist_ok=True)
        temporary = self.output.temporary(f"part-{part.key}.parquet", self.manifest.job_id)
        self._writer = pq.ParquetWriter(
            temporary, self._output_schema(), filesystem=self.output.fs, compression=COMPRESSION
        )

    def _output_schema(self) -> pa.Schema:
        # the id's type is the input's: known from the first batch, so the writer is opened lazily there
        fields = [pa.field(self.id_column or "row", self._id_type or pa.int64())]
        fields.append(pa.field("prediction", self.layout.prediction_type))
        fields += [pa.field(c, pa.float64()) for c in self.layout.proba_columns]
        fields += [pa.field("model", pa.string()), pa.field("version", pa.int32()), pa.field("job_id", pa.string())]
        return pa.schema(fields)

    def _output_table(self, ids: pa.Array, scored: pa.Table) -> pa.Table:
        n = scored.num_rows
        one = np.zeros(n, dtype=np.int32)
        columns = [ids.cast(self._output_schema().field(0).type), scored.column("prediction")]
        columns += [scored.column(c) for c in self.layout.proba_columns]
        columns += [
            pa.array([self.manifest.model]).take(one),
            pa.array(np.full(n, self.manifest.version, dtype=np.int32)),
            pa.array([self.manifest.job_id]).take(one),
        ]
        return pa.Table.from_arrays(columns, schema=self._output_schema())

    def _write_rejects(self, part: Part, ids: pa.Array, rows: pa.Table, first_row: int, mask: pa.Array) -> None:
        positions = np.flatnonzero(mask.to_numpy(zero_copy_only=False)) + first_row
        columns: dict[str, pa.Array] = {}
        if self.id_column:
            columns[self.id_column] = ids.cast(pa.string())
        columns["row"] = pa.array(positions, pa.int64())
        columns["part"] = pa.array([part.key] * len(positions), pa.string())
        columns["reason"] = rows.column(REASON)
        columns["values"] = rows.column(VALUES)
        table = pa.table(columns)
        shown = max(REASONS_SHOWN - len(self._reasons), 0)
        named = ids.slice(0, shown).to_pylist() if self.id_column else [None] * shown
        for row, key, reason in zip(positions[:shown].tolist(), named, rows.column(REASON).slice(0, shown).to_pylist()):
            self._reasons.append(f"row {row}{'' if key is None else f' (id {key})'}: {reason}")
        if self._rejects_writer is None:
            self.rejects.fs.makedirs(self.rejects.path, exist_ok=True)
            temporary = self.rejects.temporary(self._rejects_name(part), self.manifest.job_id)
            self._rejects_writer = pq.ParquetWriter(temporary, table.schema, filesystem=self.rejects.fs)
        self._rejects_writer.write_table(table)
