"""The edge runtime: single-row latency of `EdgeModel.predict` against scikit-learn in process, and the
installed size of what a device needs against what the server needs.

Run: .venv/bin/python benchmarks/edge.py [--calls 3000] [--features 25]

Latency, per model (a scaled logistic regression and a 100-tree forest on 25 float features):
- scikit-learn: the fitted model's ``predict`` on a 1-row ndarray (its fastest call) and on a 1-row
  DataFrame (the usual call of a model fitted on one);
- matchday_edge: ``EdgeModel.predict`` on one row dict with the telemetry buffer on (each prediction
  appended to SQLite in WAL mode, synchronous=NORMAL, before it returns), with it off, and on a 1-row array.
p50 and p99 over ``--calls`` calls after a warm-up, one thread (onnxruntime's intra-op threads: 1).

Install size: the files of every distribution in each dependency closure (importlib.metadata, the
``Requires-Dist`` without extras, followed transitively): matchday_edge's (onnxruntime + NumPy; the
standard library is not counted) against matchday's.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def percentiles(call: Callable[[], Any], calls: int) -> tuple[float, float]:
    for _ in range(200):
        call()
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        call()
        times[i] = time.perf_counter() - start
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def latency(calls: int, features: int) -> list[tuple[str, str, float, float]]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from matchday.config import Settings
    from matchday.edge import export_bundle
    from matchday.workspace import Workspace
    from matchday_edge import EdgeModel

    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(features)]
    frame = pd.DataFrame(rng.normal(size=(5000, features)), columns=names)
    frame["y"] = (frame["f0"] + frame["f1"] - frame["f2"] > 0).astype(int)
    models = {
        "logistic": make_pipeline(StandardScaler(), LogisticRegression()),
        "forest": RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=1),
    }
    rows: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory() as home:
        ws = Workspace(Settings(home=Path(home)))
        for name, model in models.items():
            model.fit(frame[names], frame["y"])
            ws.registry.register(name, model, reference=frame.iloc[:2000], target="y")
            bundle = export_bundle(ws.registry, f"{name}:1", Path(home) / name, signer=ws.edge_signer, deployment="d")
            key = ws.edge_signer.public_key_hex
            one = frame[names].iloc[[7]]
            row_dict = one.to_dict("records")
            row_array = one.to_numpy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an ndarray for a model fitted on a DataFrame: it says so
                rows.append(
                    (
                        name,
                        "scikit-learn predict(1-row ndarray)",
                        *percentiles(partial(model.predict, row_array), calls),
                    )
                )
            rows.append(
                (name, "scikit-learn predict(1-row DataFrame)", *percentiles(partial(model.predict, one), calls))
            )
            buffered = EdgeModel.load(bundle.path, public_key=key, device="bench", buffer=Path(home) / f"{name}.db")
            rows.append(
                (name, "EdgeModel.predict([dict]), buffered", *percentiles(partial(buffered.predict, row_dict), calls))
            )
            rows.append(
                (
                    name,
                    "EdgeModel.predict(1-row array), buffered",
                    *percentiles(partial(buffered.predict, row_array), calls),
                )
            )
            bare = EdgeModel.load(bundle.path, public_key=key, device="bench", buffer=None)
            rows.append(
                (name, "EdgeModel.predict([dict]), no buffer", *percentiles(partial(bare.predict, row_dict), calls))
            )
            buffered.close()
        ws.close()
    return rows


def closure(roots: list[str]) -> dict[str, int]:
    """Every distribution ``roots`` need (extras they name included), with its installed bytes."""
    from packaging.requirements import Requirement

    seen: dict[str, int] = {}
    todo: list[tuple[str, set[str]]] = [(r, set()) for r in roots]
    while todo:
        name, extras = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if key not in seen:
            seen[key] = sum(_size(dist, f) for f in dist.files or [])
        for text in dist.requires or []:
            requirement = Requirement(text)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            )
            if wanted:
                todo.append((requirement.name, set(requirement.extras)))
    return seen


def _size(dist: metadata.Distribution, file: Any) -> int:
    try:
        return Path(str(dist.locate_file(file))).stat().st_size
    except OSError:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--features", type=int, default=25)
    args = parser.parse_args()

    results = latency(args.calls, args.features)
    print(f"single-row latency, {args.features} float features, {args.calls} calls (microseconds)")
    print(f"{'model':9} {'call':42} {'p50':>8} {'p99':>8} {'p50 vs sklearn ndarray':>24}")
    base: dict[str, float] = {}
    for model, call, p50, p99 in results:
        base.setdefault(model, p50)
        print(f"{model:9} {call:42} {p50 * 1e6:8.1f} {p99 * 1e6:8.1f} {p50 / base[model]:23.2f}x")

    edge = closure(["onnxruntime", "numpy"])
    server = closure(["matchday"])
    server.pop("matchday", None)  # its own files are the same on both sides' checkouts; the libraries differ
    mb = 1 / 2**20
    print()
    print("installed size of the dependency closure (MB, standard library not counted)")
    print(f"{'matchday_edge (onnxruntime + numpy)':40} {len(edge):4d} distributions {sum(edge.values()) * mb:9.1f}")
    print(f"{'matchday (server)':40} {len(server):4d} distributions {sum(server.values()) * mb:9.1f}")
    print(f"{'ratio':40} {'':19} {sum(server.values()) / sum(edge.values()):8.1f}x")
    print("edge closure:", ", ".join(f"{k} {v * mb:.1f}" for k, v in sorted(edge.items(), key=lambda kv: -kv[1])))
    largest = sorted(server.items(), key=lambda kv: -kv[1])[:8]
    print("server's largest:", ", ".join(f"{k} {v * mb:.1f}" for k, v in largest))


if __name__ == "__main__":
    main()
