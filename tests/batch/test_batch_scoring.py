"""Batch scoring, local engine: the output equals the model's own predict/predict_proba on the same
rows; rows that cannot be scored go to the rejects with the reason; the reject rate stops a job;
the manifest refuses what would mix two jobs; bad input is a clear error before anything is written.

Logic, not the store: SQLite only (the log feed runs on both backends in test_batch_monitoring).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.batch_support import FEATURES, POISON, fitted_classifier, frame, register, write_parts

from matchday.batch import (
    BatchError,
    BatchInputError,
    BatchOptions,
    OutputExists,
    RejectRateExceeded,
    ResumeRefused,
    read_manifest,
)
from matchday.config import Settings
from matchday.registry import InvalidModelRef, ModelNotFound
from matchday.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'md.db'}"))
    yield workspace
    workspace.close()


def _output(folder: Path) -> pd.DataFrame:
    return pq.read_table(folder).to_pandas()


def _rejects(folder: Path) -> pd.DataFrame:
    return pq.read_table(folder).to_pandas().sort_values("row").reset_index(drop=True)


def test_output_equals_the_models_predictions_on_the_same_rows(ws: Workspace, tmp_path: Path) -> None:
    model = fitted_classifier()
    register(ws, model=model)
    rows = frame(3000, seed=3)
    # one big file in several parts (row groups), and a second file
    write_parts(tmp_path / "in", [rows.iloc[:2500], rows.iloc[2500:]], row_group_size=400)
    job = ws.batch.plan(
        "clf:1",
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        BatchOptions(id_column="key", batch_size=300, part_rows=1000),
    )
    assert len(job.source.parts) > 2 and job.total_rows == 3000
    seen: list[int] = []
    result = job.run(lambda n, bad: seen.append(n))
    assert (result.rows, result.scored, result.rejected, sum(seen)) == (3000, 3000, 0, 3000)

    out = _output(tmp_path / "out")
    assert list(out.columns) == ["key", "prediction", "proba_0", "proba_1", "model", "version", "job_id"]
    assert sorted(out["key"]) == sorted(rows["key"]) and len(out) == 3000
    out = out.set_index("key").loc[rows["key"]]
    np.testing.assert_array_equal(out["prediction"].to_numpy(), model.predict(rows[FEATURES]))
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), model.predict_proba(rows[FEATURES]), rtol=1e-12)
    assert set(out["model"]) == {"clf"} and set(out["version"]) == {1} and set(out["job_id"]) == {result.job_id}

    manifest = read_manifest(job.output.fs, job.output.path)
    assert manifest is not None and manifest.state == "done" and manifest.rows_done == 3000
    assert manifest.model_sha256 == ws.registry.get_version("clf:1").artifact_sha256
    assert len(manifest.parts) == len(job.source.parts)
    assert not list((tmp_path / "out").glob(".*tmp"))  # no temporary file left behind


def test_without_an_id_column_rows_are_numbered_over_the_whole_input_and_csv_reads_too(
    ws: Workspace, tmp_path: Path
) -> None:
    model = fitted_classifier()
    register(ws, model=model)
    rows = frame(700, seed=4)
    (tmp_path / "in").mkdir()
    rows.iloc[:300].to_csv(tmp_path / "in" / "a.csv", index=False)
    rows.iloc[300:].to_csv(tmp_path / "in" / "b.csv", index=False)
    (tmp_path / "in" / "_SUCCESS.csv").write_text("not,an,input\n")  # a marker file: skipped, as Spark's
    ws.batch.score("clf", str(tmp_path / "in" / "*.csv"), str(tmp_path / "out"))
    out = _output(tmp_path / "out").sort_values("row")
    assert out["row"].tolist() == list(range(700))
    np.testing.assert_array_equal(out["prediction"].to_numpy(), model.predict(rows[FEATURES]))
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), model.predict_proba(rows[FEATURES]), rtol=1e-12)


def test_a_regressor_gets_a_prediction_column_and_no_probabilities(ws: Workspace, tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    x = frame(400, seed=5)
    model = LinearRegression().fit(x[FEATURES], x["f0"] * 2 + x["count"])
    register(ws, "reg", model)
    write_parts(tmp_path / "in", [x])
    ws.batch.score("reg:1", str(tmp_path / "in"), str(tmp_path / "out"), BatchOptions(id_column="key"))
    out = _output(tmp_path / "out").set_index("key").loc[x["key"]]
    assert list(out.columns) == ["prediction", "model", "version", "job_id"]
    np.testing.assert_allclose(out["prediction"].to_numpy(), model.predict(x[FEATURES]), rtol=1e-12)


def test_rows_that_cannot_be_scored_are_rejected_with_the_reason_and_their_raw_values(
    ws: Workspace, tmp_path: Path
) -> None:
    model = fitted_classifier()
    register(ws, model=model)
    rows = frame(2000, seed=6).astype({"f1": object, "count": object})
    rows.loc[3, "f0"] = np.nan  # a null where the reference had none
    rows.loc[10, "f1"] = "abc"  # not a number
    rows.loc[11, "count"] = "2.5"  # not an integer
    rows.loc[12, "f1"] = "1.25"  # text that reads as a number: scored
    rows.to_csv(tmp_path / "in.csv", index=False)
    result = ws.batch.score(
        "clf:1", str(tmp_path / "in.csv"), str(tmp_path / "out"), BatchOptions(id_column="key", max_reject_rate=0.01)
    )
    assert (result.scored, result.rejected) == (1997, 3)
    rejects = _rejects(tmp_path / "out" / "_rejects")
    assert rejects["key"].tolist() == ["k3", "k10", "k11"] and rejects["row"].tolist() == [3, 10, 11]
    assert rejects["reason"].tolist() == [
        "f0: null is not allowed (the reference data had no missing values here)",
        "f1: 'abc' is not a number",
        "count: '2.5' is not an integer",
    ]
    assert json.loads(rejects["values"][1]) == {
        "key": "k10",
        "f0": str(rows.loc[10, "f0"]),  # a CSV row's values as its text says
        "f1": "abc",
        "f2": str(rows.loc[10, "f2"]),
        "count": str(rows.loc[10, "count"]),
    }
    out = _output(tmp_path / "out").set_index("key")
    assert len(out) == 1997 and "k12" in out.index
    good = rows.drop(index=[3, 10, 11]).astype({"f1": float, "count": int})
    np.testing.assert_allclose(
        out.loc[good["key"], ["proba_0", "proba_1"]].to_numpy(), model.predict_proba(good[FEATURES]), rtol=1e-12
    )


def test_a_batch_the_model_raises_on_is_split_to_find_the_bad_rows(ws: Workspace, tmp_path: Path) -> None:
    from support import batch_support

    register(ws, "rule", "support.batch_support:poisoned", proba="support.batch_support:poisoned_proba")
    rows = frame(5000, seed=7)
    bad = [17, 2048, 4999]
    rows.loc[bad, "f0"] = POISON
    write_parts(tmp_path / "in", [rows])
    result = ws.batch.score(
        "rule:1", str(tmp_path / "in"), str(tmp_path / "out"), BatchOptions(id_column="key", batch_size=4096)
    )
    assert (result.scored, result.rejected) == (4997, 3)
    rejects = _rejects(tmp_path / "out" / "_rejects")
    assert rejects["row"].tolist() == bad
    assert set(rejects["reason"]) == {"the model raised ValueError: cannot score f0 = 666"}
    good = rows.drop(index=bad)
    out = _output(tmp_path / "out").set_index("key").loc[good["key"]]
    np.testing.assert_array_equal(out["prediction"].to_numpy(), batch_support.poisoned(good))
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), batch_support.poisoned_proba(good))


def test_past_the_reject_rate_the_job_stops_and_a_higher_limit_resumes_it(ws: Workspace, tmp_path: Path) -> None:
    register(ws)
    parts = [frame(1000, seed=s, start=1000 * s) for s in range(4)]
    parts[2].loc[parts[2].index[:50], "f2"] = np.nan  # 5 % of the third part, 1.7 % of what was seen by then
    write_parts(tmp_path / "in", parts)
    out = tmp_path / "out"
    with pytest.raises(
        RejectRateExceeded, match=r"50 of 3000 rows rejected \(1.67%\), more than --max-reject-rate 1.00%"
    ) as stopped:
        ws.batch.score("clf:1", str(tmp_path / "in"), str(out), BatchOptions(id_column="key"))
    reason = "f2: null is not allowed (the reference data had no missing values here)"
    assert stopped.value.details[:2] == [f"row 2000 (id k2000): {reason}", f"row 2001 (id k2001): {reason}"]
    manifest = read_manifest(_fs(), str(out))
    assert (
        manifest is not None
        and manifest.state == "stopped"
        and "more than --max-reject-rate" in (manifest.reason or "")
    )
    assert sorted(manifest.parts) == ["00000", "00001"]  # the finished parts stay; the stopped one's output went
    assert sorted(p.name for p in out.iterdir()) == [
        "_manifest.json",
        "_rejects",
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    # the rejects that stopped the job stay, named as the stopped part's, where the error says
    assert [p.name for p in (out / "_rejects").iterdir()] == [f"rejects-{manifest.job_id}-00002.stopped.parquet"]
    kept = _rejects(out / "_rejects")
    assert kept["key"].tolist() == [f"k{i}" for i in range(2000, 2050)] and set(kept["reason"]) == {reason}

    result = ws.batch.score(
        "clf:1", str(tmp_path / "in"), str(out), BatchOptions(id_column="key", max_reject_rate=0.05, resume=True)
    )
    assert (result.rows, result.rejected, result.skipped_parts) == (2000, 50, 2)
    keys = _output(out)["key"]
    assert len(keys) == 3950 and keys.is_unique
    # the redone part's rejects replace the stopped ones: each reject once
    assert [p.name for p in (out / "_rejects").iterdir()] == [f"rejects-{manifest.job_id}-00002.parquet"]
    assert len(_rejects(out / "_rejects")) == 50


def test_jobs_sharing_a_rejects_folder_keep_each_others_rejects(ws: Workspace, tmp_path: Path) -> None:
    register(ws)
    shared = tmp_path / "rejects"
    jobs = []
    for name, seed in (("a", 1), ("b", 2)):
        rows = frame(200, seed=seed, start=1000 * seed)
        rows.loc[rows.index[:2], "f2"] = np.nan
        source = write_parts(tmp_path / f"in-{name}", [rows])
        options = BatchOptions(id_column="key", rejects=str(shared), max_reject_rate=0.5)
        jobs.append(ws.batch.score("clf:1", str(source), str(tmp_path / f"out-{name}"), options))
    assert sorted(p.name for p in shared.iterdir()) == sorted(f"rejects-{j.job_id}-00000.parquet" for j in jobs)
    assert sorted(pq.read_table(shared).column("key").to_pylist()) == ["k1000", "k1001", "k2000", "k2001"]


def test_a_finished_or_changed_job_is_not_mixed_with_another(ws: Workspace, tmp_path: Path) -> None:
    register(ws)
    register(ws)
    from sklearn.linear_model import LogisticRegression

    x = frame(300, seed=9)
    ws.registry.register("clf", LogisticRegression(C=0.01).fit(x[FEATURES], x["count"] > 4), reference=x[FEATURES])
    ws.registry.set_alias("clf", 1, "champion")
    write_parts(tmp_path / "in", [frame(200)])
    out = str(tmp_path / "out")
    ws.batch.score("clf@champion", str(tmp_path / "in"), out, BatchOptions(id_column="key"))
    with pytest.raises(OutputExists, match="use --resume to finish it, or score into another folder"):
        ws.batch.plan("clf@champion", str(tmp_path / "in"), out, BatchOptions(id_column="key"))
    with pytest.raises(ResumeRefused, match="the options: id_column 'key' -> None"):
        ws.batch.plan("clf@champion", str(tmp_path / "in"), out, BatchOptions(resume=True))
    ws.registry.set_alias("clf", 3, "champion")  # the alias moved to another model: refused
    with pytest.raises(ResumeRefused) as refused:
        ws.batch.plan("clf@champion", str(tmp_path / "in"), out, BatchOptions(id_column="key", resume=True))
    assert "the model: clf:1" in str(refused.value) and "clf:3" in str(refused.value)
    write_parts(tmp_path / "in", [frame(200), frame(10)])  # the input changed
    with pytest.raises(ResumeRefused, match="the input"):
        ws.batch.plan("clf:1", str(tmp_path / "in"), out, BatchOptions(id_column="key", resume=True))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(BatchError, match="is not empty and holds no batch job"):
        ws.batch.plan("clf:1", str(tmp_path / "in"), str(tmp_path / "other"))


def test_bad_input_is_a_clear_error_before_anything_is_written(ws: Workspace, tmp_path: Path) -> None:
    register(ws)
    good = write_parts(tmp_path / "good", [frame(50)])
    out = tmp_path / "out"

    def plan(model: str, source: str, **options: object) -> None:
        ws.batch.plan(model, source, str(out), BatchOptions(**options))  # type: ignore[arg-type]

    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "a.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(BatchInputError, match=r"a.parquet is not a readable Parquet file"):
        plan("clf:1", str(tmp_path / "corrupt"))
    write_parts(tmp_path / "missing", [frame(50).drop(columns=["f2"])])
    with pytest.raises(BatchInputError, match="cannot be scored by the model") as missing:
        plan("clf:1", str(tmp_path / "missing"))
    assert "missing column 'f2' (a float input of the model)" in str(missing.value)
    with pytest.raises(BatchInputError, match="missing the id column 'id'"):
        plan("clf:1", str(good), id_column="id")
    listy = pa.table({"f0": [[1.0]], "f1": [1.0], "f2": [1.0], "count": [1]})
    (tmp_path / "typed").mkdir()
    pq.write_table(listy, tmp_path / "typed" / "a.parquet")
    with pytest.raises(BatchInputError, match="column 'f0' is list<element: double>, not a float"):
        plan("clf:1", str(tmp_path / "typed"))
    with pytest.raises(ModelNotFound):
        plan("nope:1", str(good))
    with pytest.raises(InvalidModelRef):
        plan("clf:x", str(good))
    with pytest.raises(BatchInputError, match=r"cannot read http://127.0.0.1:9/in.parquet"):
        plan("clf:1", "http://127.0.0.1:9/in.parquet")
    with pytest.raises(BatchInputError, match="no such file or folder"):
        plan("clf:1", str(tmp_path / "nowhere"))
    with pytest.raises(BatchInputError, match="no file matches"):
        plan("clf:1", str(tmp_path / "good" / "*.csv"))
    with pytest.raises(BatchError, match="--max-reject-rate must be between 0 and 1"):
        plan("clf:1", str(good), max_reject_rate=2.0)
    assert not out.exists()  # nothing was written by any of them


def test_a_file_corrupt_in_the_middle_fails_the_job_keeping_the_parts_before_it(ws: Workspace, tmp_path: Path) -> None:
    register(ws)
    folder = write_parts(tmp_path / "in", [frame(100, start=0), frame(100, start=100), frame(100, start=200)])
    job = ws.batch.plan("clf:1", str(folder), str(tmp_path / "out"), BatchOptions(id_column="key"))
    data = (folder / "part-001.parquet").read_bytes()
    (folder / "part-001.parquet").write_bytes(data[:4] + bytes(len(data) - 8) + data[-4:])  # pages zeroed
    with pytest.raises(BatchError, match="part-001.parquet"):
        job.run()
    manifest = read_manifest(job.output.fs, job.output.path)
    assert manifest is not None and manifest.state == "failed" and list(manifest.parts) == ["00000"]
    assert "part-001.parquet" in (manifest.reason or "")


def test_batch_imports_no_http() -> None:
    """DESIGN.md: batch/ never does HTTP; it imports the faces of the parts below it only."""
    import matchday.batch

    allowed = ("matchday.store", "matchday.registry", "matchday.errors", "matchday.ray_cluster")
    root = pathlib.Path(matchday.batch.__file__).parent
    for path in root.rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("from ", "import ")):
                module = stripped.split()[1]
                assert not module.startswith(("fastapi", "starlette", "httpx", "uvicorn", "matchday.serving")), (
                    path,
                    line,
                )
                if module.startswith("matchday"):
                    assert module.startswith("matchday.batch") or module in allowed, f"{path}: {line}"


def _fs():  # type: ignore[no-untyped-def]
    import fsspec

    return fsspec.filesystem("file")


def test_the_public_face_names_only_what_exists() -> None:
    import matchday.batch

    assert [n for n in matchday.batch.__all__ if not hasattr(matchday.batch, n)] == []
