"""A batch job's input: Parquet or CSV files (one, a folder, a glob, any fsspec URL) cut into parts.

A part is the unit a job finishes, records and resumes: a whole file, or a run of a big Parquet
file's row groups (so a killed job over one 5M-row file does not start again from its first row).
Parts are read in record batches through `pyarrow.dataset`, never a whole file at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from matchday.batch.errors import BatchInputError

Format = Literal["parquet", "csv"]
SUFFIXES: dict[str, Format] = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "csv"}
PART_ROWS = 250_000  # a big Parquet file is cut into parts of at least this many rows (whole row groups)
READ_AHEAD = 2  # record batches the scanner decodes ahead of the consumer: bounded, whatever the file's size


@dataclass(frozen=True)
class Part:
    """A run of an input file's rows: the whole file (``row_groups`` None) or some of its row groups."""

    index: int
    path: str
    row_groups: tuple[int, ...] | None
    rows: int
    first_row: int  # the row number (over the whole input, in order) of its first row

    @property
    def key(self) -> str:
        return f"{self.index:05d}"

    def describe(self) -> dict[str, Any]:
        groups = None if self.row_groups is None else [self.row_groups[0], self.row_groups[-1]]
        return {"path": self.path, "row_groups": groups, "rows": self.rows, "first_row": self.first_row}


@dataclass
class BatchInput:
    """The files of one input, their schemas and their parts."""

    uri: str
    fs: fsspec.AbstractFileSystem
    format: Format
    files: list[str]
    schemas: dict[str, pa.Schema]
    parts: list[Part]
    text_columns: tuple[str, ...] = ()  # CSV columns read as text, each value checked by the job (not the reader)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)

    def fingerprint(self) -> str:
        """The sha256 of the parts and each file's size: a resumed job must read the same rows."""
        sizes = {f: _size(self.fs, f) for f in self.files}
        plan = [[p.describe(), sizes[p.path]] for p in self.parts]
        return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()

    def arrow_filesystem(self) -> pafs.FileSystem:
        if isinstance(self.fs, fsspec.implementations.local.LocalFileSystem):
            return pafs.LocalFileSystem()
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

    def file_format(self) -> ds.FileFormat:
        if self.format == "parquet":
            return ds.ParquetFileFormat()
        convert = pacsv.ConvertOptions(
            column_types={c: pa.string() for c in self.text_columns}, strings_can_be_null=True
        )
        return ds.CsvFileFormat(convert_options=convert)

    def read(self, part: Part, columns: Sequence[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        """The part's rows in record batches of at most ``batch_size`` rows, only ``columns``."""
        try:
            dataset = ds.dataset(part.path, format=self.file_format(), filesystem=self.arrow_filesystem())
            fragment = next(iter(dataset.get_fragments()))
            if part.row_groups is not None:
                fragment = fragment.subset(row_group_ids=list(part.row_groups))
            scanner = ds.Scanner.from_fragment(
                fragment,
                columns=list(columns),
                batch_size=batch_size,
                batch_readahead=READ_AHEAD,
                fragment_readahead=1,
                use_threads=True,
            )
            yield from scanner.to_batches()
        except (pa.ArrowException, OSError) as exc:
            raise BatchInputError(f"{part.path}: cannot read rows of part {part.key}: {exc}") from exc


def open_input(uri: str, text_columns: Sequence[str] = (), *, part_rows: int = PART_ROWS) -> BatchInput:
    """The input at ``uri``: its files (a folder is searched; names starting with ``_`` or ``.`` are
    skipped, as Spark and Arrow do), their schemas and parts. ``text_columns``: CSV columns to read as
    text (the model's inputs and the id), so a bad value rejects its row, not the whole file."""
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        files = _files(fs, path, uri)
    except BatchInputError:
        raise
    except Exception as exc:  # each filesystem raises its own: a missing bucket, a 404, a refused connection
        raise BatchInputError(f"cannot read {uri}: {type(exc).__name__}: {exc}") from exc
    formats = {SUFFIXES[_suffix(f)] for f in files}
    if len(formats) > 1:
        raise BatchInputError(f"{uri} holds both Parquet and CSV files; score them as two jobs")
    fmt = formats.pop()
    found = BatchInput(uri, fs, fmt, files, {}, [], tuple(text_columns))
    first_row = 0
    for path_ in files:
        schema, groups = _parquet_layout(found, path_) if fmt == "parquet" else _csv_layout(found, path_)
        found.schemas[path_] = schema
        for run in _runs(groups, part_rows):
            rows = sum(groups[i] for i in run) if run is not None else sum(groups)
            found.parts.append(Part(len(found.parts), path_, run, rows, first_row))
            first_row += rows
    return found


def _files(fs: fsspec.AbstractFileSystem, path: str, uri: str) -> list[str]:
    if any(c in path for c in "*?["):
        files = [f for f in fs.glob(path) if not _hidden(f.rsplit("/", 1)[-1]) and fs.isfile(f)]
        what = f"no file matches {uri}"
    elif fs.isdir(path):
        files = [f for f in fs.find(path) if not _hidden(f[len(path.rstrip("/")) :])]
        what = f"{uri} holds no .parquet or .csv file"
    elif fs.isfile(path) or fs.exists(path):
        if _suffix(path) not in SUFFIXES:
            raise BatchInputError(f"{uri}: unsupported file type {_suffix(path) or '(none)'}; use .parquet or .csv")
        return [path]
    else:
        raise BatchInputError(f"{uri}: no such file or folder")
    files = sorted(f for f in files if _suffix(f) in SUFFIXES)
    if not files:
        raise BatchInputError(what)
    return files


def _parquet_layout(source: BatchInput, path: str) -> tuple[pa.Schema, list[int]]:
    try:
        with source.fs.open(path, "rb") as f:
            meta = pq.ParquetFile(f).metadata
            schema = meta.schema.to_arrow_schema()
    except Exception as exc:
        raise BatchInputError(f"{path} is not a readable Parquet file: {exc}") from exc
    return schema, [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def _csv_layout(source: BatchInput, path: str) -> tuple[pa.Schema, list[int]]:
    """A CSV file's columns and its row count (one pass over it: row numbers and the progress bar need it)."""
    try:
        dataset = ds.dataset(path, format=source.file_format(), filesystem=source.arrow_filesystem())
        schema = dataset.schema
        rows = dataset.count_rows()
    except Exception as exc:
        raise BatchInputError(f"{path} is not a readable CSV file: {exc}") from exc
    return schema, [rows]


def _runs(groups: list[int], part_rows: int) -> Iterator[tuple[int, ...] | None]:
    """Consecutive row groups of at least ``part_rows`` rows each; the whole file when it is one part."""
    if sum(groups) <= part_rows or len(groups) <= 1:
        yield None
        return
    run: list[int] = []
    rows = 0
    for i, n in enumerate(groups):
        run.append(i)
        rows += n
        if rows >= part_rows:
            yield tuple(run)
            run, rows = [], 0
    if run:
        yield tuple(run)


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _hidden(relative: str) -> bool:
    return any(piece.startswith(("_", ".")) for piece in relative.split("/") if piece)


def _size(fs: fsspec.AbstractFileSystem, path: str) -> int | None:
    try:
        return int(fs.size(path))
    except Exception:  # a server that does not say: the parts still pin the rows
        return None
