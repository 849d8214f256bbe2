"""Both Ray engines on the local two-CPU cluster `matchday.ray_cluster.connect` starts: batch scoring's
Ray Data job gives the local engine's output, rejects and manifest (the actor pool sized so it cannot
starve the read tasks: this test would hang otherwise) and resumes a job the local engine started;
retraining's trainer runs as a Ray task.

One module, one cluster: starting one took 10 s of both CPUs on a busy machine, more than the work of
either engine's test, and a worker the first job started takes the next one's tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest
from support.batch_support import FEATURES, fitted_classifier, frame, register, write_parts
from support.ray_support import one_ray_cluster_at_a_time
from support.retrain_support import champion_workspace, log_labelled

from matchday.batch import BatchOptions, read_manifest
from matchday.config import Settings
from matchday.ray_cluster import connect
from matchday.workspace import Workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    """The cluster both engines join; its workers import the tests' trainers by name, as a cluster's would
    with the trainer's code on their path."""
    with pytest.MonkeyPatch.context() as env, one_ray_cluster_at_a_time():
        env.setenv("PYTHONPATH", str(Path(__file__).parents[1]))
        ray = connect()
        try:
            yield
        finally:
            ray.shutdown()


def test_the_ray_engine_gives_the_local_engines_output(tmp_path: Path) -> None:
    ws = Workspace(Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'md.db'}"))
    model = fitted_classifier()
    register(ws, model=model)
    rows = frame(3000, seed=21)
    rows.loc[[5, 2900], "f1"] = np.nan
    source = write_parts(tmp_path / "in", [rows.iloc[:2200], rows.iloc[2200:]], row_group_size=500)
    runs = {}
    for engine in ("local", "ray"):
        options = BatchOptions(engine=engine, batch_size=400, part_rows=1000)  # type: ignore[arg-type]
        result = ws.batch.score("clf:1", str(source), str(tmp_path / engine), options)
        assert (result.rows, result.rejected) == (3000, 2)
        runs[engine] = (
            pq.read_table(tmp_path / engine).to_pandas().sort_values("row").reset_index(drop=True),
            pq.read_table(tmp_path / engine / "_rejects").to_pandas().sort_values("row").reset_index(drop=True),
            read_manifest(fsspec.filesystem("file"), str(tmp_path / engine)),
        )
    (local, local_rejects, local_manifest), (ray_out, ray_rejects, ray_manifest) = runs["local"], runs["ray"]
    assert local.drop(columns="job_id").equals(ray_out.drop(columns="job_id"))
    assert local_rejects.equals(ray_rejects) and ray_rejects["row"].tolist() == [5, 2900]
    good = rows.drop(index=[5, 2900])
    np.testing.assert_allclose(
        ray_out[["proba_0", "proba_1"]].to_numpy(), model.predict_proba(good[FEATURES]), rtol=1e-12
    )
    assert ray_manifest is not None and local_manifest is not None
    assert ray_manifest.state == "done" and ray_manifest.engine == "ray"
    assert {k: (p.rows, p.rejected) for k, p in ray_manifest.parts.items()} == {
        k: (p.rows, p.rejected) for k, p in local_manifest.parts.items()
    }
    ws.close()


def test_a_ray_job_resumes_one_the_local_engine_started(tmp_path: Path) -> None:
    """Parts done are passed over, even inside a file Ray reads whole."""
    ws = Workspace(Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'md.db'}"))
    register(ws)
    rows = frame(2000, seed=22)
    rows.loc[1000:1099, "f0"] = np.nan  # the third part is 20 % rejects: the local job stops there
    source = write_parts(tmp_path / "in", [rows], row_group_size=250)
    out = str(tmp_path / "out")
    with pytest.raises(Exception, match="rows rejected"):
        ws.batch.score("clf:1", str(source), out, BatchOptions(id_column="key", part_rows=500, batch_size=250))
    done_before = read_manifest(fsspec.filesystem("file"), out)
    assert done_before is not None and sorted(done_before.parts) == ["00000", "00001"]
    options = BatchOptions(
        id_column="key", part_rows=500, batch_size=250, engine="ray", resume=True, max_reject_rate=0.2
    )
    result = ws.batch.score("clf:1", str(source), out, options)
    assert (result.rows, result.rejected, result.skipped_parts) == (1000, 100, 2)
    keys = pq.read_table(out).to_pandas()["key"]
    assert len(keys) == 1900 and keys.is_unique
    ws.close()


def test_retraining_trains_as_a_ray_task(tmp_path: Path) -> None:
    from matchday.retrain import RayEngine

    ws = champion_workspace(tmp_path / "home", f"sqlite:///{tmp_path / 'md.db'}")
    ws.retraining.parts.engine = RayEngine()
    ws.retraining.steps.parts.engine = ws.retraining.parts.engine
    log_labelled(ws, 400)
    run = ws.retraining.run("cancer", actor="tester")
    assert [o for _, o in ws.retraining.tick()] == ["trained"]
    done = ws.retraining.get(run.id)
    assert done.steps[1]["data"] == {"engine": "ray"}
    version = ws.registry.get_version(done.candidate or "")
    assert version.lineage is not None and version.lineage["engine"] == "ray"
    assert [o for _, o in ws.retraining.tick()] == ["rolling_out"]
    ws.close()
