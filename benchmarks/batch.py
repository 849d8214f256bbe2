"""Batch scoring: matchday's local and Ray engines against reading the whole file and calling
``predict_proba`` once, and against pandas.

Run: .venv/bin/python benchmarks/batch.py [--rows 1000000 5000000] [--model hgb|logreg] [--skip-ray]
     [--workdir DIR] [--batch-size 65536]

Setup (not measured): Parquet files of N rows x 25 float64 features (row groups of 100,000 rows,
snappy, written in chunks so the parent never holds a whole file), generated once per
``--workdir``; a small scikit-learn classifier (default: HistGradientBoostingClassifier, 50
iterations, depth 6; ``--model logreg``: a LogisticRegression) fitted on 20,000 rows and registered
in a temporary workspace (SQLite).

Measured, each in its own child process (peak RSS from ``os.wait4`` of that child, so runs do not
see each other's memory), the time from the first read to the last result:
- (a) ideal: ``pq.read_table`` of the whole file, one float64 matrix, one ``predict_proba`` call;
  nothing written.
- (b) local engine: ``Workspace().batch.score(...)``: streamed record batches, validation against
  the signature, the model per batch, the output Parquet parts (id, prediction, probabilities,
  model, version, job id) and the manifest written.
- (c) Ray engine: the same job with ``engine="ray"`` on ``ray.init(num_cpus=2)`` (started before the
  clock, as a cluster is).
- (d) pandas: ``pd.read_parquet`` + ``predict_proba`` on the DataFrame; nothing written.

Ratios are each row's throughput over (a)'s at the same size. "CPU s" is the child's user + system
time (start-up included): less sensitive than the clock to other work on the two CPUs, whose load
is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEATURES = [f"x{i}" for i in range(25)]
ROW_GROUP = 100_000


def generate(path: Path, rows: int, seed: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        return
    rng = np.random.default_rng(seed)
    schema = pa.schema([(f, pa.float64()) for f in FEATURES])
    partial = path.with_suffix(".partial")
    with pq.ParquetWriter(partial, schema) as writer:
        for start in range(0, rows, ROW_GROUP):
            n = min(ROW_GROUP, rows - start)
            writer.write_table(pa.table({f: rng.normal(size=n) for f in FEATURES}, schema=schema))
    partial.rename(path)


def setup(workdir: Path, model_kind: str) -> None:
    """Fit and register the model (once per workdir and model kind)."""
    import numpy as np
    import pandas as pd

    from matchday.config import Settings
    from matchday.workspace import Workspace

    ws = Workspace(Settings(home=workdir / "home", database_url=f"sqlite:///{workdir / 'md.db'}"))
    try:
        if any(m.name == model_kind for m in ws.registry.list_models()):
            return
        rng = np.random.default_rng(1)
        x = pd.DataFrame(rng.normal(size=(20_000, 25)), columns=FEATURES)
        y = (x.to_numpy() @ rng.normal(size=25) + rng.normal(size=20_000) > 0).astype(int)
        if model_kind == "hgb":
            from sklearn.ensemble import HistGradientBoostingClassifier

            model = HistGradientBoostingClassifier(max_iter=50, max_depth=6, random_state=0).fit(x, y)
        else:
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression(max_iter=500).fit(x, y)
        ws.registry.register(model_kind, model, reference=x.iloc[:5000])
    finally:
        ws.close()


def child(mode: str, workdir: Path, model_kind: str, data: Path, batch_size: int) -> dict[str, float]:
    """One measurement, in this (fresh) process."""
    import numpy as np

    from matchday.config import Settings
    from matchday.workspace import Workspace

    ws = Workspace(Settings(home=workdir / "home", database_url=f"sqlite:///{workdir / 'md.db'}"))
    ref = f"{model_kind}:1"
    out = Path(tempfile.mkdtemp(dir=workdir, prefix=f"out-{mode}-"))
    if mode in ("ideal", "pandas"):
        model = ws.registry.load(ref).model  # type: ignore[attr-defined]
        started = time.perf_counter()
        if mode == "ideal":
            import pyarrow.parquet as pq

            table = pq.read_table(data)
            matrix = np.column_stack([table.column(f).to_numpy() for f in FEATURES])
            del table
            import pandas as pd

            proba = model.predict_proba(pd.DataFrame(matrix, columns=FEATURES, copy=False))
        else:
            import pandas as pd

            frame = pd.read_parquet(data)
            proba = model.predict_proba(frame[FEATURES])
        seconds = time.perf_counter() - started
        rows = len(proba)
    else:
        from matchday.batch import BatchOptions

        if mode == "ray":
            os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        started = time.perf_counter()
        result = ws.batch.score(ref, str(data), str(out / "scored"), BatchOptions(engine=mode, batch_size=batch_size))  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        rows = result.rows
    ws.close()
    return {"rows": rows, "seconds": seconds}


def measure(mode: str, workdir: Path, model_kind: str, data: Path, batch_size: int) -> dict[str, float]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", mode, "--workdir", str(workdir), "--model", model_kind,
         "--data", str(data), "--batch-size", str(batch_size)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{mode} on {data.name} failed (exit {proc.returncode})")
    found = json.loads(output.decode().strip().splitlines()[-1])
    found["peak_mib"] = usage.ru_maxrss / 1024  # KiB on Linux
    found["cpu_seconds"] = usage.ru_utime + usage.ru_stime  # the whole process, start-up included
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--model", choices=["hgb", "logreg"], default="hgb")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--batch-size", type=int, default=65_536)
    parser.add_argument("--only", nargs="+", choices=["ideal", "local", "ray", "pandas"], default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.workdir, args.model, args.data, args.batch_size)))
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="matchday-batch-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    setup(workdir, args.model)
    modes = [("ideal", "(a) read whole file + predict_proba once"), ("local", "(b) matchday local engine")]
    if not args.skip_ray:
        modes.append(("ray", "(c) matchday Ray engine (2 CPUs)"))
    modes.append(("pandas", "(d) pandas read_parquet + predict_proba"))
    if args.only:
        modes = [m for m in modes if m[0] in args.only]
    print(f"model: {args.model}; batch size {args.batch_size}; data in {workdir}; load {os.getloadavg()}")
    header = (
        f"{'rows':>10} | {'run':<44} | {'seconds':>8} | {'rows/s':>11} | {'x (a)':>6} | {'peak MiB':>8} | {'CPU s':>6}"
    )
    print(header)
    print("-" * len(header))
    for rows in args.rows:
        data = workdir / f"rows-{rows}.parquet"
        generate(data, rows, seed=rows % 1000)
        ideal = None
        for mode, label in modes:
            found = measure(mode, workdir, args.model, data, args.batch_size)
            speed = found["rows"] / found["seconds"]
            ideal = ideal or speed
            print(
                f"{rows:>10,} | {label:<44} | {found['seconds']:>8.2f} | {speed:>11,.0f} | "
                f"{speed / ideal:>6.2f} | {found['peak_mib']:>8.0f} | {found['cpu_seconds']:>6.1f}",
                flush=True,
            )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
