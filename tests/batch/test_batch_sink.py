"""The part sink: running counts for the reject rate (read by the scorer thread while the writer
finishes parts), and renames that survive a power loss (fsync the file, rename, fsync the folder;
the manifest the same way, after the part it records)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.batch_support import fitted_classifier, frame, register, write_parts

from matchday.batch import MANIFEST, BatchOptions, Manifest, read_manifest
from matchday.batch.manifest import PartDone
from matchday.batch.scoring import REASON, VALUES, OutputLayout
from matchday.batch.sink import Folder, PartSink
from matchday.batch.source import Part
from matchday.config import Settings
from matchday.workspace import Workspace

JOB = "6f0a3c1e3d3b5d0e9a576d61746368e1"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'md.db'}"))
    yield workspace
    workspace.close()


def _manifest(parts: dict[str, PartDone]) -> Manifest:
    return Manifest(JOB, "clf:1", "clf", 1, "0" * 64, {}, "0" * 64, "in", "0" * 64, 10, 10_000, parts=parts)


def _scored(n: int, bad: int) -> pa.Table:
    reasons = ["f0: null is not allowed"] * bad + [None] * (n - bad)
    return pa.table(
        {
            "prediction": pa.array(np.zeros(n, dtype=np.int64)),
            "proba_0": pa.array(np.full(n, 0.5)),
            "proba_1": pa.array(np.full(n, 0.5)),
            REASON: pa.array(reasons, pa.string()),
            VALUES: pa.array(['{"f0": null}'] * bad + [None] * (n - bad), pa.string()),
        }
    )


def test_the_reject_rate_reads_running_counts_kept_by_the_writer(tmp_path: Path) -> None:
    fs = fsspec.filesystem("file")
    earlier = {"00000": PartDone(3000, 2990, 10, "part-00000.parquet", None)}
    sink = PartSink(
        Folder(fs, str(tmp_path / "out")),
        Folder(fs, str(tmp_path / "out" / "_rejects")),
        _manifest(earlier),
        OutputLayout([0, 1], pa.int64()),
        None,
        0.01,
    )
    assert sink.counts() == (3000, 10) and sink.failures_allowed() == 20  # 1 % of 3000, less the 10
    part = Part(1, "in/a.parquet", None, 500, 3000)
    sink.write(part, 3000, _scored(500, 5))
    assert sink.counts() == (3500, 15) and sink.failures_allowed() == 20  # 1 % of 3500, less 15
    sink.finish(part)
    assert sink.counts() == (3500, 15) and sorted(sink.manifest.parts) == ["00000", "00001"]
    second = Part(2, "in/b.parquet", None, 100, 3500)
    sink.write(second, 3500, _scored(100, 0))
    assert sink.counts() == (3600, 15)
    sink.abort()  # the part in progress is scored again by the next run: its rows no longer count
    assert sink.counts() == (3500, 15)


def test_the_counts_are_read_safely_while_the_writer_records_parts(tmp_path: Path) -> None:
    fs, folder = fsspec.filesystem("memory"), f"/batch-sink-counts-{tmp_path.name}"  # the counts, not the disk
    sink = PartSink(
        Folder(fs, f"{folder}/out"),
        Folder(fs, f"{folder}/out/_rejects"),
        _manifest({}),
        OutputLayout([0, 1], pa.int64()),
        None,
        0.5,
    )
    done = threading.Event()
    errors: list[BaseException] = []

    def scorer() -> None:
        try:
            while not done.is_set():
                seen, rejected = sink.counts()
                assert rejected <= seen and sink.failures_allowed() >= 0
                time.sleep(0)  # let the writer run
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=scorer)
    thread.start()
    try:
        for i in range(100):
            part = Part(i, f"in/{i}.parquet", None, 2, 2 * i)
            sink.write(part, 2 * i, _scored(2, 0))
            sink.finish(part)
    finally:
        done.set()
        thread.join()
    fs.rm(folder, recursive=True)
    assert errors == [] and sink.counts() == (200, 0) and len(sink.manifest.parts) == 100


@pytest.mark.slow
def test_many_one_row_group_parts_score_on_the_local_engine(ws: Workspace, tmp_path: Path) -> None:
    model = fitted_classifier()
    register(ws, model=model)
    rows = frame(200, seed=21)
    source = write_parts(tmp_path / "in", [rows], row_group_size=1)
    options = BatchOptions(id_column="key", batch_size=1, part_rows=1)
    job = ws.batch.plan("clf:1", str(source), str(tmp_path / "out"), options)
    assert len(job.source.parts) == 200
    result = job.run()
    assert (result.rows, result.parts) == (200, 200)
    out = pq.read_table(tmp_path / "out").to_pandas().set_index("key").loc[rows["key"]]
    np.testing.assert_array_equal(out["prediction"].to_numpy(), model.predict(rows[["f0", "f1", "f2", "count"]]))
    manifest = read_manifest(job.output.fs, job.output.path)
    assert manifest is not None and manifest.state == "done" and len(manifest.parts) == 200


class _Recorder:
    """``os.fsync`` and ``os.replace`` as they were called, each with the path it touched."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, ...]] = []
        fsync, replace = os.fsync, os.replace

        def recording_fsync(fd: Any) -> None:
            self.calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
            fsync(fd)

        def recording_replace(src: Any, dst: Any, **kwargs: Any) -> None:
            call = ("replace", os.fspath(src), os.fspath(dst))
            if call[2].endswith(MANIFEST):  # which parts this manifest records, as it was renamed
                call += (",".join(json.loads(Path(src).read_text())["parts"]),)
            self.calls.append(call)
            replace(src, dst, **kwargs)

        monkeypatch.setattr(os, "fsync", recording_fsync)
        monkeypatch.setattr(os, "replace", recording_replace)

    def under(self, folder: Path) -> list[tuple[str, ...]]:
        """The calls on paths inside ``folder`` (other threads' files are not the job's)."""
        return [c for c in self.calls if c[1].startswith(str(folder))]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names an fd's file through /proc")
def test_every_rename_is_fsynced_before_and_after_and_the_manifest_follows_its_parts(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(ws)
    rows = frame(300, seed=22)
    rows.loc[[3, 250], "f2"] = np.nan  # a reject in each part
    source = write_parts(tmp_path / "in", [rows.iloc[:150], rows.iloc[150:]])
    out = tmp_path / "out"
    recorder = _Recorder(monkeypatch)
    ws.batch.score("clf:1", str(source), str(out), BatchOptions(id_column="key", max_reject_rate=0.5))
    calls = recorder.under(out)

    renames = [i for i, c in enumerate(calls) if c[0] == "replace"]
    assert renames, calls
    for i in renames:
        src, dst = calls[i][1], calls[i][2]
        assert calls[i - 1] == ("fsync", src), f"{dst}: not fsynced before its rename"
        assert calls[i + 1] == ("fsync", os.path.dirname(dst)), f"{dst}: its folder not fsynced after"
    finals = [Path(calls[i][2]).name for i in renames]
    job = read_manifest(fsspec.filesystem("file"), str(out))
    assert job is not None
    for key in ("00000", "00001"):
        # the first manifest that lists the part is renamed after the part's and its rejects' files are in place
        recorded = next(n for n, i in enumerate(renames) if finals[n] == MANIFEST and key in calls[i][3].split(","))
        assert finals.index(f"part-{key}.parquet") < recorded
        assert finals.index(f"rejects-{job.job_id}-{key}.parquet") < recorded


def test_a_job_into_a_non_local_file_system_renames_without_fsync(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(ws)
    source = write_parts(tmp_path / "in", [frame(50, seed=23)])
    recorder = _Recorder(monkeypatch)
    result = ws.batch.score("clf:1", str(source), "memory://batch-sink-test/out", BatchOptions(id_column="key"))
    assert result.scored == 50 and [c for c in recorder.calls if c[0] == "fsync"] == []
    memory = fsspec.filesystem("memory")
    assert memory.exists("/batch-sink-test/out/part-00000.parquet") and memory.exists(
        "/batch-sink-test/out/_manifest.json"
    )
    memory.rm("/batch-sink-test", recursive=True)
