"""Summarising an hour of logged predictions: matchday's summarizer side by side with pandas.

Run: .venv/bin/python benchmarks/window_summary.py [--rows 1000000] [--database-url URL] [--repeat 1]
     [--numeric-test wasserstein|ks] [--workdir DIR [--setup-only]] [--profile FILE]

Setup (not measured): a seeded classification data set with 25 features (20 numeric, 5
categorical, a few with missing values), a scikit-learn pipeline (imputation, one-hot, logistic
regression) trained on a 20,000-row reference and registered with it in a temporary workspace;
then N rows scored in batches and logged through `PredictionLogStore.insert`, all within one hour
(twelve 5-minute windows, one hour window). In the second half of the hour three numeric features
shift (x0, x1: location; x2: spread), one categorical feature changes its shares (c0) and one gets
an unseen category (c1), and the error rate rises from 0.5 % to 2 %. On PostgreSQL the setup ends
with ANALYZE, as autovacuum would have run by then (it is off on the test machines' PostgreSQL:
without statistics the planner scans the whole log for the tick's query of labelled rows).

Measured, each in a fresh process reading the same database, `--repeat` times:
- matchday: one `summarizer.tick()` of the monitoring loop over all N rows (reads the log past its
  cursor, summarises it, computes the metrics and drift against the stored reference profile and
  writes the 5m, 1h, 1d and count windows).
- pandas: `pd.read_sql` of the same rows (the log's Arrow batches, each `to_pandas()`, one column
  per input), then per 5-minute window and for the hour: rows, error rate, latency p50/p95/p99,
  per-feature missing share and drift, class shares, mean confidence. Drift uses the raw reference
  rows (matchday has only its stored profile) and, by default, matchday's own default tests at this
  reference size (normed Wasserstein >= 0.1 for numeric, Jensen-Shannon >= 0.1 for categorical), so
  the verdicts can be compared; `--numeric-test ks` uses scipy's ks_2samp (p < 0.05) instead.

"MB" is each process's high-water mark (VmHWM); "extra MB" subtracts its resident size just
before the measured work (libraries imported, database opened).

With `--database-url` (PostgreSQL) the URL is an administrator's: the benchmark creates a fresh
database beside it (matchday_bench_<random>) and drops it at the end (`--keep` keeps it, and the
temporary folder). The loop's cursor and windows live in that database, so nothing else is read.
Logging a million rows takes minutes: `--workdir DIR --setup-only` logs them once, and later runs
with the same `--workdir` (and `--rows`, `--database-url`) measure without logging again; that
folder and its database are kept (delete them yourself; `DROP DATABASE` for PostgreSQL).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from bench_processes import create_database, drop_database

NUMERIC = [f"x{i}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
FEATURES = NUMERIC + CATEGORICAL
LEVELS = ["a", "b", "c", "d"]
SHARES = [0.4, 0.3, 0.2, 0.1]
DRIFTED = ["x0", "x1", "x2", "c0", "c1"]  # in the second half of the hour
MISSING = {"x18": 0.02, "x19": 0.05, "c4": 0.03}  # share of missing values in the logged rows
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HOUR_MICROSECONDS = 3_600_000_000
MODEL = "window-bench"
DEPLOYMENT = "window-bench"
REFERENCE_ROWS = 20_000
THRESHOLD = 0.1  # matchday's default for Wasserstein (normed) and Jensen-Shannon with > 1000 reference rows


# -- data ----------------------------------------------------------------------------------------
def features(rng: np.random.Generator, n: int, drifted: np.ndarray | None = None) -> pd.DataFrame:
    """n rows of the 25 features; rows where ``drifted`` is true come from the shifted distribution."""
    shifted = np.zeros(n, dtype=bool) if drifted is None else drifted
    data: dict[str, Any] = {}
    for i, name in enumerate(NUMERIC):
        scale = 1 + i / 10
        values = rng.normal(i, scale, n)
        if name == "x0":
            values = np.where(shifted, values + 0.5 * scale, values)
        elif name == "x1":
            values = np.where(shifted, values + 0.3 * scale, values)
        elif name == "x2":
            values = np.where(shifted, i + (values - i) * 1.6, values)
        data[name] = values
    for name in CATEGORICAL:
        values = rng.choice(LEVELS, n, p=SHARES).astype(object)
        if name == "c0":
            values = np.where(shifted, rng.choice(LEVELS, n, p=[0.15, 0.25, 0.25, 0.35]).astype(object), values)
        elif name == "c1":
            values = np.where(shifted & (rng.random(n) < 0.3), "e", values)
        data[name] = values
    return pd.DataFrame(data)


def with_missing(rng: np.random.Generator, frame: pd.DataFrame) -> pd.DataFrame:
    for name, share in MISSING.items():
        frame.loc[rng.random(len(frame)) < share, name] = np.nan
    return frame


def labels(rng: np.random.Generator, frame: pd.DataFrame) -> np.ndarray:
    """Three classes from linear scores of a few features (so the model has something to learn)."""
    x = frame[NUMERIC].to_numpy()
    centred = (x - np.arange(20)) / (1 + np.arange(20) / 10)
    scores = np.stack(
        [
            centred[:, 0] + centred[:, 3] - centred[:, 5],
            centred[:, 1] - centred[:, 4] + (frame["c2"] == "a").to_numpy() * 1.0,
            centred[:, 2] + centred[:, 6] * 0.5 + (frame["c3"] == "d").to_numpy() * 1.5,
        ],
        axis=1,
    )
    return np.argmax(scores + rng.normal(0, 0.8, scores.shape), axis=1)


def train(frame: pd.DataFrame, y: np.ndarray):  # type: ignore[no-untyped-def]
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")
                ),
                CATEGORICAL,
            ),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))]).fit(frame, y)


# -- setup: register and log (not measured) ------------------------------------------------------
def setup(home: Path, url: str | None, rows: int, seed: int = 0) -> int:
    """Register the model with its reference and log ``rows`` rows; returns the version."""
    from matchday.config import Settings
    from matchday.store import PredictionLogStore
    from matchday.workspace import Workspace

    warnings.filterwarnings("ignore", message="Found unknown categories")
    rng = np.random.default_rng(seed)
    reference = features(rng, REFERENCE_ROWS)
    model = train(reference, labels(rng, reference))
    reference.to_parquet(home / "reference.parquet")
    ws = Workspace(Settings(home=home, database_url=url))
    version = ws.registry.register(MODEL, model, reference=reference).version
    log = PredictionLogStore(ws.database)
    classes = model.classes_
    start, batch = time.perf_counter(), 20_000
    for lo in range(0, rows, batch):
        idx = np.arange(lo, min(lo + batch, rows))
        second_half = idx >= rows // 2
        frame = with_missing(rng, features(rng, len(idx), second_half))
        proba = model.predict_proba(frame)
        predictions = classes[np.argmax(proba, axis=1)].tolist()
        failed = rng.random(len(idx)) < np.where(second_half, 0.02, 0.005)
        latency = rng.lognormal(np.log(0.012), 0.45, len(idx)).tolist()
        offsets = (idx * HOUR_MICROSECONDS // rows).tolist()
        records = frame.to_dict("records")  # NaN is logged as null
        probabilities = proba.round(6).tolist()
        out = []
        for j, i in enumerate(idx.tolist()):
            bad = bool(failed[j])
            out.append(
                {
                    "request_id": str(uuid.UUID(int=i + 1)),
                    "entity_id": f"e{i % 50_000}",
                    "deployment": DEPLOYMENT,
                    "model": MODEL,
                    "version": version,
                    "at": T0 + timedelta(microseconds=offsets[j]),
                    "inputs": records[j],
                    "prediction": None if bad else predictions[j],
                    "probabilities": None if bad else probabilities[j],
                    "latency_seconds": latency[j],
                    "routing": {"plan": "single"},
                    "role": "served",
                    "error": "RuntimeError: model failed" if bad else None,
                    "shadow_of": None,
                }
            )
        for k in range(0, len(out), 500):  # the writer's batch: one Arrow batch per 500 rows
            log.insert(out[k : k + 500])
        done = idx[-1] + 1
        if done % 100_000 < batch or done == rows:
            elapsed = time.perf_counter() - start
            print(f"  logged {done:>9,} of {rows:,} rows ({done / elapsed:,.0f} rows/s)", file=sys.stderr, flush=True)
    if ws.database.dialect == "postgresql":  # the planner's statistics, as autovacuum keeps them (it is off on
        with ws.database.engine.connect() as connection:  # this machine's PostgreSQL): without them a
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")  # seq scan
    ws.close()
    return version


# -- the two measurements (each in its own process) ----------------------------------------------
def peak_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def current_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def window_key(start: datetime | pd.Timestamp) -> str:
    return pd.Timestamp(start).tz_convert("UTC").isoformat()


def run_matchday(home: Path, url: str | None, rows: int, profile: str | None) -> dict[str, Any]:
    import sqlalchemy as sa

    from matchday.config import Settings
    from matchday.monitoring.drift import statistics
    from matchday.store import WindowStore
    from matchday.workspace import Workspace, build_monitoring

    ws = Workspace(Settings(home=home, database_url=url))
    ws.settings = ws.settings.model_copy(
        update={"monitoring": ws.settings.monitoring.model_copy(update={"count_window": min(max(rows, 10), 1_000_000)})}
    )
    loop = build_monitoring(ws)
    # scipy.stats, as the pandas side imports it before its clock starts: a running worker imported it
    # at its first tick, not at every one (0.4 s of this tick's time otherwise)
    statistics.scipy_stats()
    with ws.database.session(write=True) as s:  # an earlier repeat's windows and cursor: start afresh
        s.execute(sa.text("DELETE FROM metric_windows"))
        s.execute(sa.text("DELETE FROM monitor_state"))
    baseline = current_mb()
    now = T0 + timedelta(hours=2)
    start = time.perf_counter()
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        result = profiler.runcall(loop.summarizer.tick, now)
        profiler.dump_stats(profile)
    else:
        result = loop.summarizer.tick(now)
    seconds = time.perf_counter() - start
    peak, extra = peak_mb(), peak_mb() - baseline
    store = WindowStore(ws.database)
    windows = {}
    for w in store.series(DEPLOYMENT, "5m") + store.series(DEPLOYMENT, "1h"):
        m = w.metrics
        windows[f"{w.width} {window_key(w.start)}"] = {
            "rows": w.rows,
            "error_rate": m.get("error_rate"),
            "latency": [m.get(f"latency_p{q}") for q in (50, 95, 99)],
            "missing": {f: m.get(f"missing.{f}") for f in FEATURES},
            "drift": {f: m.get(f"drift.{f}") for f in FEATURES},
            "drifted": {f: bool(m.get(f"drift_detected.{f}")) for f in FEATURES},
            "class_share": {k.partition(".")[2]: v for k, v in m.items() if k.startswith("class_share.")},
            "mean_confidence": m.get("mean_confidence"),
        }
    written = len(result.windows)
    ws.close()
    return {
        "seconds": seconds,
        "rows": result.rows,
        "peak_mb": peak,
        "extra_mb": extra,
        "windows": windows,
        "written": written,
    }


def run_pandas(home: Path, url: str | None, numeric_test: str) -> dict[str, Any]:
    import orjson
    import sqlalchemy as sa
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import ks_2samp, wasserstein_distance

    engine = sa.create_engine(url or f"sqlite:///{(home / 'matchday.db').absolute()}")
    with engine.connect() as conn:  # open the connection before measuring, as matchday's process does
        conn.execute(sa.text("SELECT 1"))
    baseline = current_mb()
    start = time.perf_counter()
    reference = pd.read_parquet(home / "reference.parquet")
    batches = pd.read_sql(sa.text("SELECT data FROM prediction_batches ORDER BY id"), engine)
    frame = pd.concat(
        [
            pa.ipc.open_stream(pa.py_buffer(data)).read_all().flatten().to_pandas()  # one column per input
            for data in batches["data"]
        ],
        ignore_index=True,
    ).rename(columns=lambda c: c.removeprefix("inputs."))
    frame = frame[
        frame["id"].notna() & (frame["deployment"] == DEPLOYMENT) & frame["role"].isin(["served", "failed_over"])
    ].reset_index(drop=True)

    def parse(value: Any) -> Any:  # SQLite hands back JSON text, psycopg parsed values
        return orjson.loads(value) if isinstance(value, str | bytes) else value

    def label(value: Any) -> str:  # as matchday reads a class: 1.0 (a pandas float column) is "1"
        value = parse(value)
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)

    at = pd.to_datetime(frame["at"], utc=True, format="ISO8601")
    frame["window"] = at.dt.floor("5min")
    ok = frame["error"].isna().to_numpy()
    inputs = frame[FEATURES].copy()
    inputs[NUMERIC] = inputs[NUMERIC].astype("float64")
    probabilities = np.stack(frame["probabilities"][ok].to_numpy()).astype(np.float64)
    answered = pd.DataFrame(
        {
            "window": frame["window"][ok].to_numpy(),
            "prediction": [label(v) for v in frame["prediction"][ok]],
            "confidence": probabilities.max(axis=1),
        }
    )
    inputs_ok = inputs[ok].assign(window=frame["window"][ok].to_numpy())

    ref_numeric = {f: reference[f].dropna().to_numpy() for f in NUMERIC}
    ref_std = {f: max(float(np.std(v)), 0.001) for f, v in ref_numeric.items()}
    ref_counts = {f: reference[f].value_counts() for f in CATEGORICAL}

    def drift(part: pd.DataFrame) -> tuple[dict[str, float], dict[str, bool]]:
        scores, drifted = {}, {}
        for f in NUMERIC:
            current = part[f].dropna().to_numpy()
            if numeric_test == "ks":
                scores[f] = float(ks_2samp(ref_numeric[f], current).pvalue)
                drifted[f] = bool(scores[f] < 0.05)
            else:
                scores[f] = wasserstein_distance(ref_numeric[f], current) / ref_std[f]
                drifted[f] = bool(scores[f] >= THRESHOLD)
        for f in CATEGORICAL:
            counts = pd.concat([ref_counts[f], part[f].value_counts()], axis=1).fillna(0).to_numpy().T
            scores[f] = float(jensenshannon(counts[0], counts[1]))
            drifted[f] = bool(scores[f] >= THRESHOLD)
        return scores, drifted

    def metrics(rows: pd.DataFrame, ok_inputs: pd.DataFrame, ok_outputs: pd.DataFrame) -> dict[str, Any]:
        scores, drifted = drift(ok_inputs)
        return {
            "rows": len(rows),
            "error_rate": float(rows["error"].notna().mean()),
            "latency": rows["latency_seconds"].quantile([0.5, 0.95, 0.99]).tolist(),
            "missing": ok_inputs[FEATURES].isna().mean().to_dict(),
            "drift": scores,
            "drifted": drifted,
            "class_share": ok_outputs["prediction"].value_counts(normalize=True).to_dict(),
            "mean_confidence": float(ok_outputs["confidence"].mean()),
        }

    windows = {}
    inputs_by_window = dict(iter(inputs_ok.groupby("window")))
    outputs_by_window = dict(iter(answered.groupby("window")))
    for window, rows in frame.groupby("window"):
        windows[f"5m {window_key(window)}"] = metrics(rows, inputs_by_window[window], outputs_by_window[window])
    windows[f"1h {window_key(frame['window'].min().floor('1h'))}"] = metrics(frame, inputs_ok, answered)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "rows": len(frame),
        "peak_mb": peak_mb(),
        "extra_mb": peak_mb() - baseline,
        "windows": windows,
    }


def measure(
    method: str, home: Path, url: str | None, rows: int, numeric_test: str, profile: str | None = None
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        method,
        "--home",
        str(home),
        "--rows",
        str(rows),
        "--numeric-test",
        numeric_test,
    ]
    if url:
        command += ["--child-url", url]
    if profile:
        command += ["--profile", profile]
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{method} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the comparison ------------------------------------------------------------------------------
def compare(ours: dict[str, Any], theirs: dict[str, Any], numeric_test: str) -> list[str]:
    lines = []
    keys = sorted(set(ours["windows"]) | set(theirs["windows"]))
    same_keys = set(ours["windows"]) == set(theirs["windows"])
    both = [k for k in keys if k in ours["windows"] and k in theirs["windows"]]
    a, b = ours["windows"], theirs["windows"]
    rows_ok = all(a[k]["rows"] == b[k]["rows"] for k in both)
    error_ok = all(abs(a[k]["error_rate"] - b[k]["error_rate"]) < 1e-9 for k in both)
    p99 = [abs(a[k]["latency"][2] / b[k]["latency"][2] - 1) for k in both]
    p50 = [abs(a[k]["latency"][0] / b[k]["latency"][0] - 1) for k in both]
    missing = max(abs((a[k]["missing"][f] or 0) - (b[k]["missing"][f] or 0)) for k in both for f in FEATURES)
    shares = max(
        abs(a[k]["class_share"].get(c, 0) - b[k]["class_share"].get(c, 0))
        for k in both
        for c in set(a[k]["class_share"]) | set(b[k]["class_share"])
    )
    confidence = max(abs(a[k]["mean_confidence"] - b[k]["mean_confidence"]) for k in both)
    verdicts = [(k, f) for k in both for f in FEATURES]
    agree = sum(a[k]["drifted"][f] == b[k]["drifted"][f] for k, f in verdicts)
    lines.append(
        f"windows: {len(a)} matchday, {len(b)} pandas, same windows: {same_keys}; "
        f"same row counts: {rows_ok}; same error rates: {error_ok}"
    )
    lines.append(
        f"latency p50 / p99: matchday's sketch within {max(p50):.2%} / {max(p99):.2%} of pandas' exact quantiles"
    )
    lines.append(
        f"missing shares: max difference {missing:.1e}; class shares: {shares:.1e}; mean confidence: {confidence:.1e}"
    )
    lines.append(f"drift verdicts (window x feature): {agree} of {len(verdicts)} agree")
    hour = next(k for k in both if k.startswith("1h"))
    lines.append(
        "hour window, drifted per matchday: "
        + ", ".join(f for f in FEATURES if a[hour]["drifted"][f])
        + " | per pandas: "
        + ", ".join(f for f in FEATURES if b[hour]["drifted"][f])
    )
    second = [k for k in both if k.startswith("5m")][-1]
    lines.append(
        "last 5m window, drifted per matchday: "
        + ", ".join(f for f in FEATURES if a[second]["drifted"][f])
        + " | per pandas: "
        + ", ".join(f for f in FEATURES if b[second]["drifted"][f])
    )
    disagree = [
        f"{k.split()[1][11:16]} {f} ({a[k]['drift'][f]:.3f} vs {b[k]['drift'][f]:.3f})"
        for k, f in verdicts
        if a[k]["drifted"][f] != b[k]["drifted"][f]
    ]
    if disagree:
        theirs_is = "KS p-value" if numeric_test == "ks" else "score"
        lines.append(
            f"disagreements (window, feature, matchday score vs pandas {theirs_is}): " + "; ".join(disagree[:12])
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="PostgreSQL admin URL; a fresh database is created beside it")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--numeric-test",
        choices=("wasserstein", "ks"),
        default="wasserstein",
        help="pandas' drift test on numeric features (matchday uses its default)",
    )
    parser.add_argument(
        "--profile", help="after the timed runs, one more matchday tick under cProfile: stats to this file"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and database")
    parser.add_argument("--workdir", help="log into this folder once and reuse it on later runs (kept)")
    parser.add_argument("--setup-only", action="store_true", help="log the rows (into --workdir) and stop")
    parser.add_argument("--child", choices=("matchday", "pandas"))
    parser.add_argument("--home")
    parser.add_argument("--child-url")
    args = parser.parse_args()
    if args.child:
        warnings.filterwarnings("ignore")
        home = Path(args.home)
        if args.child == "matchday":
            out = run_matchday(home, args.child_url, args.rows, args.profile)
        else:
            out = run_pandas(home, args.child_url, args.numeric_test)
        print(json.dumps(out))
        return

    keep = args.keep or args.workdir is not None
    home = Path(args.workdir or tempfile.mkdtemp(prefix="matchday-window-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    done = home / "logged.json"
    previous = json.loads(done.read_text()) if done.exists() else None
    if previous is not None and (previous["rows"], previous["admin_url"]) != (args.rows, args.database_url):
        sys.exit(
            f"{home} holds {previous['rows']:,} rows logged for {previous['admin_url'] or 'SQLite'}: use another --workdir"
        )
    url = previous["url"] if previous else (create_database(args.database_url) if args.database_url else None)
    backend = "PostgreSQL" if url else "SQLite"
    try:
        if previous is None:
            print(
                f"setup: registering the model and logging {args.rows:,} rows ({backend}, {home}) ...",
                file=sys.stderr,
                flush=True,
            )
            started = time.perf_counter()
            setup(home, url, args.rows)
            done.write_text(json.dumps({"rows": args.rows, "admin_url": args.database_url, "url": url}))
            print(f"setup took {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        else:
            print(f"reusing the {args.rows:,} rows logged in {home}", file=sys.stderr, flush=True)
        if args.setup_only:
            return
        runs: dict[str, list[dict[str, Any]]] = {"matchday": [], "pandas": []}
        for i in range(args.repeat):
            order = ("matchday", "pandas") if i % 2 == 0 else ("pandas", "matchday")
            for method in order:
                runs[method].append(measure(method, home, url, args.rows, args.numeric_test))
                print(f"  repeat {i + 1}: {method} {runs[method][-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
        if args.profile:  # one more tick under cProfile, after the timed runs and not counted in them
            profiled = measure("matchday", home, url, args.rows, args.numeric_test, args.profile)
            print(
                f"  profiled tick: {profiled['seconds']:.1f} s under cProfile, stats in {args.profile}",
                file=sys.stderr,
                flush=True,
            )
        load = os.getloadavg()
        seconds = {m: statistics.median(r["seconds"] for r in rs) for m, rs in runs.items()}
        print(
            f"\n{backend}, {args.rows:,} logged rows in one hour, 25 features; median of {args.repeat} run(s); "
            f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )
        print(
            f"{'method':<40} | {'rows':>10} | {'seconds':>8} | {'rows/s':>9} | {'peak MB':>8} | {'extra MB':>8} | "
            f"pandas s / s"
        )
        print("-" * 115)
        names = {"matchday": "matchday summarizer.tick()", "pandas": f"pandas read_sql + groupby ({args.numeric_test})"}
        for method in ("matchday", "pandas"):
            r = runs[method][-1]
            s = seconds[method]
            print(
                f"{names[method]:<40} | {r['rows']:>10,} | {s:>8.1f} | {r['rows'] / s:>9,.0f} | "
                f"{max(x['peak_mb'] for x in runs[method]):>8.0f} | {max(x['extra_mb'] for x in runs[method]):>8.0f} | "
                f"{seconds['pandas'] / s:>11.2f}x"
            )
        if args.repeat > 1:
            for method in ("matchday", "pandas"):
                print(f"  {method} runs (s): " + ", ".join(f"{r['seconds']:.1f}" for r in runs[method]))
        print(
            f"matchday wrote {runs['matchday'][-1]['written']} windows (twelve 5m, 1h, 1d, by count); "
            f"pandas computed {len(runs['pandas'][-1]['windows'])} (twelve 5m, 1h)"
        )
        print("\ncheck:")
        for line in compare(runs["matchday"][-1], runs["pandas"][-1], args.numeric_test):
            print(f"  {line}")
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
            if url:
                drop_database(args.database_url, url)
        else:
            print(f"kept {home}" + (f" and {url}" if url else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
