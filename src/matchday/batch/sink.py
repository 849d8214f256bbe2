"""Where scored tables go: one output file per input part (and a rejects file when it had any),
each written under a temporary name and renamed when the part is whole, then the manifest.

Both engines feed it the scored tables of one part after another, in order. It keeps the reject
rate, and hands the scored rows to the deployment's log when the job has one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from matchday.batch.errors import RejectRateExceeded
from matchday.batch.manifest import Manifest, PartDone, write_manifest
from matchday.batch.scoring import REASON, ROW_ID, VALUES, OutputLayout
from matchday.batch.source import Part

MIN_ROWS_FOR_RATE = 1000  # the reject rate is judged once this many rows were seen (and at the end)
COMPRESSION = "snappy"  # the fastest to write of Parquet's common codecs, and what Spark writes by default


class RowFeed(Protocol):
    """Scored rows handed on as they are written (the deployment's log)."""

    def add(self, ids: pa.Array, scored: pa.Table) -> None: ...

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
        self._rows = self._rejected = 0
        self._id_type: pa.DataType | None = None  # the id column's type, as the input has it

    # -- the engines' calls ------------------------------------------------------------------
    def failures_allowed(self) -> int:
        """How many more rows may fail before the job is past its reject rate (at the least row count)."""
        seen = max(self.manifest.rows_done + self._rows, MIN_ROWS_FOR_RATE)
        return max(int(self.max_reject_rate * seen) - self.manifest.rejected - self._rejected, 0)

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
            self.feed.add(accepted_ids, accepted)
        self._rows += n
        self._rejected += bad
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
        self.output.fs.mv(self.output.temporary(name, self.manifest.job_id), f"{self.output.path}/{name}")
        rejects_path = None
        if self._rejects_writer is not None:
            self._rejects_writer.close()
            self._rejects_writer = None
            rejects_path = f"{self.rejects.path}/rejects-{part.key}.parquet"
            self.rejects.fs.mv(
                self.rejects.temporary(f"rejects-{part.key}.parquet", self.manifest.job_id), rejects_path
            )
        if self.feed is not None:
            self.feed.flush()
        self.manifest.parts[part.key] = PartDone(
            self._rows, self._rows - self._rejected, self._rejected, name, rejects_path
        )
        write_manifest(self.output.fs, self.output.path, self.manifest)
        self._part, self._rows, self._rejected = None, 0, 0

    def abort(self) -> None:
        """Close and remove the unfinished part's temporary files (its rows will be scored again)."""
        for writer in (self._writer, self._rejects_writer):
            if writer is not None:
                try:
                    writer.close()
                except Exception:  # the file goes anyway
                    pass
        if self._part is not None:
            for folder, name in ((self.output, "part"), (self.rejects, "rejects")):
                temporary = folder.temporary(f"{name}-{self._part.key}.parquet", self.manifest.job_id)
                if folder.fs.exists(temporary):
                    folder.fs.rm(temporary)
        self._writer = self._rejects_writer = None
        self._part, self._rows, self._rejected = None, 0, 0

    def check_rate(self, *, final: bool) -> None:
        seen = self.manifest.rows_done + self._rows
        rejected = self.manifest.rejected + self._rejected
        if seen == 0 or (seen < MIN_ROWS_FOR_RATE and not final):
            return
        if rejected / seen > self.max_reject_rate:
            raise RejectRateExceeded(
                f"{rejected} of {seen} rows rejected ({rejected / seen:.2%}), more than --max-reject-rate "
                f"{self.max_reject_rate:.2%}: the job stopped",
                [
                    f"the reasons are in {self.rejects.path}",
                    "fix the input, or raise --max-reject-rate, and run again with --resume",
                ],
            )

    # -- inside ------------------------------------------------------------------------------
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
        if self._rejects_writer is None:
            self.rejects.fs.makedirs(self.rejects.path, exist_ok=True)
            temporary = self.rejects.temporary(f"rejects-{part.key}.parquet", self.manifest.job_id)
            self._rejects_writer = pq.ParquetWriter(temporary, table.schema, filesystem=self.rejects.fs)
        self._rejects_writer.write_table(table)
