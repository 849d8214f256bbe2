"""How soon the default monitors flag a shift, and how often they cry wolf: through the real loop.

Run: .venv/bin/python benchmarks/detection.py [--seeds 5] [--stationary 100000] [--compare HEAD~1]

Each run is a fresh workspace (a temporary home, its SQLite file): a logistic regression trained on
generated data (9 numeric features, each its own mean and spread) is registered with a reference
of ``--reference-rows`` rows and its target, and the rows of a stream are logged to the prediction
log as the server would, ``--tick-rows`` at a time, each batch followed by one tick of the
monitoring loop (`Summarizer` + `MonitoringLoop`, the default monitors, a count window of 1,000
rows). Rows are one second apart, so time windows close as they would at that traffic.

- **a third, +1 std**: after ``before`` normal rows (a different position per seed, so the shift
  falls anywhere in a window by count), 3 of the 9 features move by one standard deviation. The
  delay is the number of shifted rows logged when the `data-drift` alert opened.
- **all, x3**: every feature multiplied by 3 after 600 normal rows (the issue's example).
- **stationary**: ``--stationary`` rows from the reference's distribution, with their labels one
  tick behind (so `accuracy-drop` and `concept-drift` are judged too), a tick every
  ``--stationary-tick-rows``: every alert opened is a false alarm.

``--compare REV`` runs the same on matchday as of git revision REV (a temporary worktree on the
path instead of this checkout) and prints both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FEATURES = [f"x{i}" for i in range(9)]
MEANS = np.linspace(-2.0, 6.0, len(FEATURES))
SPREADS = np.linspace(0.5, 3.0, len(FEATURES))
T0 = datetime(2026, 11, 20, tzinfo=UTC)
DRIFT_MONITORS = ("data-drift", "prediction-drift")


def sample(rng: np.random.Generator, rows: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of the stationary distribution and their labels (a noisy linear rule)."""
    X = rng.normal(MEANS, SPREADS, size=(rows, len(FEATURES)))
    z = ((X - MEANS) / SPREADS) @ np.linspace(1.0, -1.0, len(FEATURES)) + rng.normal(0, 0.5, rows)
    return pd.DataFrame(X, columns=FEATURES), (z > 0).astype(int)


def workspace(home: Path, reference_rows: int, seed: int) -> tuple[Any, Any]:
    from sklearn.linear_model import LogisticRegression

    from matchday.config import Settings
    from matchday.workspace import Workspace, build_monitoring

    ws = Workspace(Settings(home=home, database_url=f"sqlite:///{home / 'matchday.db'}"))
    rng = np.random.default_rng(1000 + seed)
    X, y = sample(rng, reference_rows)
    model = LogisticRegression(max_iter=500).fit(X, y)
    ws.registry.register("bench", model, reference=X.assign(target=y), target="target")
    return ws, build_monitoring(ws), model


def run(
    frame: pd.DataFrame,
    labels: np.ndarray | None,
    *,
    reference_rows: int,
    tick_rows: int,
    seed: int,
    stop_on: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Log ``frame`` through a fresh workspace's loop; the row count at which each alert opened."""
    from matchday.store import PredictionLogStore

    with tempfile.TemporaryDirectory() as tmp:
        ws, loop, model = workspace(Path(tmp), reference_rows, seed)
        log = PredictionLogStore(ws.database)
        predictions = model.predict(frame)
        probabilities = model.predict_proba(frame)
        records = frame.to_dict("records")
        opened: list[tuple[str, int]] = []
        started = time.perf_counter()
        for start in range(0, len(frame), tick_rows):
            end = min(start + tick_rows, len(frame))
            log.insert(
                [
                    {
                        "request_id": str(uuid.UUID(int=i + 1)),
                        "entity_id": None,
                        "deployment": "bench",
                        "model": "bench",
                        "version": 1,
                        "at": T0 + timedelta(seconds=i),
                        "inputs": records[i],
                        "prediction": int(predictions[i]),
                        "probabilities": probabilities[i].tolist(),
                        "latency_seconds": 0.01,
                        "routing": {"plan": "single"},
                        "role": "served",
                        "error": None,
                        "shadow_of": None,
                    }
                    for i in range(start, end)
                ]
            )
            if labels is not None and start:  # the previous batch's labels arrive now
                lo = max(0, start - tick_rows)
                log.apply_labels(
                    "bench", [("request_id", str(uuid.UUID(int=i + 1)), int(labels[i])) for i in range(lo, start)]
                )
            result = loop.tick(T0 + timedelta(seconds=end + 15))
            opened += [(c.alert.monitor, end) for c in result.changes if c.kind == "opened"]
            if any(name in stop_on for name, _ in opened):
                break
        return {"opened": opened, "rows": end, "seconds": time.perf_counter() - started}


def shifted_stream(seed: int, kind: str) -> tuple[pd.DataFrame, int]:
    rng = np.random.default_rng(seed)
    if kind == "third":
        before = 1000 + int(rng.integers(0, 1000))  # anywhere in a window by count, after the first
        frame, _ = sample(rng, before + 1000)
        for j in range(0, len(FEATURES), 3):  # x0, x3, x6: a third of the features
            frame.loc[before:, FEATURES[j]] += SPREADS[j]
    else:
        before = 600
        frame, _ = sample(rng, before + 2000)
        frame.loc[before:, FEATURES] *= 3
    return frame, before


def measure(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"delays": {}, "stationary": None}
    for kind in ("third", "all"):
        delays = []
        for seed in range(args.seeds):
            frame, before = shifted_stream(seed, kind)
            result = run(
                frame,
                None,
                reference_rows=args.reference_rows,
                tick_rows=args.tick_rows,
                seed=seed,
                stop_on=("data-drift",),
            )
            early = [(m, r) for m, r in result["opened"] if r <= before]
            drift = [r - before for m, r in result["opened"] if m == "data-drift" and r > before]
            first = [r - before for m, r in result["opened"] if m in DRIFT_MONITORS and r > before]
            delays.append(
                {
                    "seed": seed,
                    "shift_at": before,
                    "data_drift": drift[0] if drift else None,
                    "first_drift_alert": first[0] if first else None,
                    "before_shift": early,
                }
            )
            print(f"  {kind} seed {seed}: {delays[-1]}", file=sys.stderr)
        out["delays"][kind] = delays
    if args.stationary:
        rng = np.random.default_rng(10_000)
        frame, labels = sample(rng, args.stationary)
        result = run(frame, labels, reference_rows=args.reference_rows, tick_rows=args.stationary_tick_rows, seed=0)
        out["stationary"] = {"rows": args.stationary, "alerts": result["opened"], "seconds": result["seconds"]}
        print(f"  stationary: {out['stationary']}", file=sys.stderr)
    return out


def rows_text(values: list[int | None], limit: int) -> str:
    found = [v for v in values if v is not None]
    missed = len(values) - len(found)
    if not found:
        return f"never (within {limit} rows)"
    text = f"median {statistics.median(found):.0f}, max {max(found)}"
    return text + (f", {missed} not within {limit}" if missed else "")


def report(name: str, result: dict[str, Any]) -> None:
    print(f"\n{name}")
    print(f"{'stream':<34} {'data-drift delay (rows)':<34} per seed")
    print("-" * 110)
    limits = {"third": 1000, "all": 2000}
    for kind, label in (("third", "a third of features +1 std"), ("all", "every feature x3 after 600")):
        delays = result["delays"][kind]
        per_seed = " ".join("-" if d["data_drift"] is None else str(d["data_drift"]) for d in delays)
        print(f"{label:<34} {rows_text([d['data_drift'] for d in delays], limits[kind]):<34} {per_seed}")
        first = " ".join("-" if d["first_drift_alert"] is None else str(d["first_drift_alert"]) for d in delays)
        print(
            f"{'  first drift alert (any)':<34} {rows_text([d['first_drift_alert'] for d in delays], limits[kind]):<34} {first}"
        )
        early = sum(len(d["before_shift"]) for d in delays)
        print(f"{'  alerts before the shift':<34} {early}")
    stationary = result["stationary"]
    if stationary is not None:
        names = sorted({m for m, _ in stationary["alerts"]})
        print(
            f"{stationary['rows']:,} stationary rows: {len(stationary['alerts'])} alerts"
            + (f" ({', '.join(names)}, first at row {stationary['alerts'][0][1]})" if names else "")
            + f"  [{stationary['seconds']:.0f} s]"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--stationary", type=int, default=100_000, help="stationary rows (0: skip)")
    parser.add_argument("--reference-rows", type=int, default=2000)
    parser.add_argument("--tick-rows", type=int, default=25, help="rows logged between two ticks (shifts)")
    parser.add_argument("--stationary-tick-rows", type=int, default=200, help="the same, in the stationary run")
    parser.add_argument("--compare", metavar="REV", help="also run matchday as of this git revision")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # a child's answer
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args)))
        return
    repo = Path(__file__).resolve().parent.parent
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    print(
        f"matchday detection: {len(FEATURES)} features, reference {args.reference_rows} rows, count window 1000, "
        f"a tick every {args.tick_rows} rows ({args.stationary_tick_rows} when stationary), {args.seeds} seeds"
    )
    report(f"this checkout ({head}, working tree)", measure(args))
    if args.compare:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "old"
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.compare], cwd=repo, check=True)
            try:
                argv = [a for a in sys.argv[1:] if a != "--compare" and a != args.compare]
                child = subprocess.run(
                    [sys.executable, __file__, *argv, "--json"],
                    env={**os.environ, "PYTHONPATH": str(tree / "src")},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                report(f"matchday at {args.compare}", json.loads(child.stdout.strip().splitlines()[-1]))
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo, check=True)


if __name__ == "__main__":
    main()
