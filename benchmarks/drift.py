"""matchday's drift engine side by side with Evidently's DataDriftPreset: time and peak memory.

Run: .venv/bin/python benchmarks/drift.py [--rows 10000,100000,1000000]

The same seeded data (20 numeric and 5 categorical columns, reference and current each of N
rows, 5 numeric and 2 categorical shifted) is written once to two Parquet files. Each measurement
runs in a fresh process that checks those two files for drift the way a user would, reading
included: matchday as `matchday drift` does (`compare_parquet_files`, one column at a time),
Evidently by `pandas.read_parquet` and its DataDriftPreset. Both use their automatic test choice.
Peak memory is the process's maximum resident set size; "extra" subtracts the resident size once
both libraries were imported, before any data was read.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd


def frames(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(current: bool) -> pd.DataFrame:
        data: dict[str, np.ndarray] = {}
        for i in range(20):
            data[f"x{i}"] = rng.normal(i + (0.3 if current and i < 5 else 0.0), 1.0, rows)
        for i in range(5):
            shares = [0.55, 0.25, 0.15, 0.05] if current and i < 2 else [0.4, 0.3, 0.2, 0.1]
            data[f"c{i}"] = rng.choice(["a", "b", "c", "d"], rows, p=shares)
        return pd.DataFrame(data)

    return frame(False), frame(True)


def rss_mb() -> float:
    """This process's own high-water mark. Not ``ru_maxrss``: a child started by a parent that held
    a lot of memory begins with the parent's peak there."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def child(tool: str, ref_path: str, cur_path: str) -> None:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from matchday.monitoring.drift import compare_parquet_files

    baseline = current_rss_mb()
    start = time.perf_counter()
    if tool == "matchday":
        drifted = sorted(compare_parquet_files(ref_path, cur_path).drifted_columns)
    else:
        ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
        definition = DataDefinition(
            numerical_columns=[f"x{i}" for i in range(20)], categorical_columns=[f"c{i}" for i in range(5)]
        )
        snapshot = Report([DataDriftPreset()]).run(
            current_data=Dataset.from_pandas(cur, data_definition=definition),
            reference_data=Dataset.from_pandas(ref, data_definition=definition),
        )
        drifted = []
        for metric in snapshot.dict()["metrics"]:
            config = metric["config"]
            if config["type"].endswith("ValueDrift"):
                p_value = "p_value" in config["method"]
                value, threshold = metric["value"], config["threshold"]
                if (value < threshold) if p_value else (value >= threshold):
                    drifted.append(config["column"])
        drifted.sort()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mb": rss_mb(), "extra_mb": rss_mb() - baseline, "drifted": drifted}))


def measure(tool: str, ref_path: str, cur_path: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", tool, ref_path, cur_path], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="10000,100000,1000000")
    parser.add_argument("--child", nargs=3, metavar=("TOOL", "REF", "CUR"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    print(
        f"{'rows':>10} | {'matchday s':>10} | {'evidently s':>11} | {'speed-up':>8} | {'matchday MB':>11} | "
        f"{'evidently MB':>12} | {'extra MB m/e':>13} | {'memory ratio':>12} | same verdicts"
    )
    print("-" * 125)
    for rows in (int(r) for r in args.rows.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            ref, cur = frames(rows)
            ref_path, cur_path = f"{tmp}/reference.parquet", f"{tmp}/current.parquet"
            ref.to_parquet(ref_path)
            cur.to_parquet(cur_path)
            del ref, cur
            ours, theirs = measure("matchday", ref_path, cur_path), measure("evidently", ref_path, cur_path)
            print(
                f"{rows:>10,} | {ours['seconds']:>10.2f} | {theirs['seconds']:>11.2f} | "
                f"{theirs['seconds'] / ours['seconds']:>7.1f}x | {ours['peak_mb']:>11.0f} | {theirs['peak_mb']:>12.0f} | "
                f"{ours['extra_mb']:>5.0f}/{theirs['extra_mb']:<7.0f} | "
                f"{ours['extra_mb'] / max(theirs['extra_mb'], 1):>11.2f}x | {ours['drifted'] == theirs['drifted']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
