"""The demo's batch step: a week of a shop's transactions scored offline as files, two bad rows set aside
with their reasons, a resumed job that finds nothing left to do, and the rows watched by the checkout
deployment's monitors (``source: batch``), labels joining later by transaction id."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console

from matchday.batch import BatchOptions
from matchday.demo.fraud import transactions
from matchday.workspace import Workspace

DAYS = 4
ROWS_PER_DAY = 12_500
MODEL = "demo-fraud@champion"
DEPLOYMENT = "fraud"  # the cloud server's deployment: batch rows join its log as source: batch


@dataclass(frozen=True)
class Outcome:
    rows: int
    scored: int
    rejected: int
    logged: int
    resumed_parts_skipped: int
    labels_joined: int


def write_days(folder: str, days: int = DAYS, rows: int = ROWS_PER_DAY) -> pa.Table:
    """One Parquet file per day with a ``txn_id``; two amounts are missing (a broken upstream export)."""
    table = transactions(days * rows, seed=7)
    ids = pa.array([f"txn-{i:06d}" for i in range(table.num_rows)])
    amount = table["amount"].to_pylist()
    amount[5] = amount[days * rows - 3] = None
    table = table.set_column(0, "amount", pa.array(amount, pa.float64())).append_column("txn_id", ids)
    for day in range(days):
        pq.write_table(table.slice(day * rows, rows).drop_columns(["is_fraud"]), f"{folder}/day-{day + 1}.parquet")
    return table


def run(console: Console, ws: Workspace) -> Outcome:
    home = ws.settings.home.absolute() / "demo-batch"
    shutil.rmtree(home, ignore_errors=True)
    (home / "in").mkdir(parents=True)
    truth = write_days(str(home / "in"))
    output = str(home / "out")
    console.print(
        f"wrote {DAYS} days of transactions ({truth.num_rows:,} rows) to {home / 'in'}\n"
        f"$ matchday batch score {MODEL} {home / 'in'} {output} --id-column txn_id --deployment {DEPLOYMENT}"
    )
    options = BatchOptions(id_column="txn_id", deployment=DEPLOYMENT)
    result = ws.batch.score(MODEL, str(home / "in"), output, options)
    console.print(
        f"done: job {result.job_id[:12]}, {result.model}:{result.version}: {result.rows:,} rows in "
        f"{result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s), {result.scored:,} scored, "
        f"{result.rejected:,} rejected; {result.parts} part(s) written\n"
        f"logged {result.logged:,} rows to {DEPLOYMENT}'s monitoring (source: batch)"
    )
    scored = pq.read_table(output, columns=None).sort_by("txn_id")
    console.print("the output's first rows:")
    console.print(scored.slice(0, 3).to_pandas().to_string(index=False))
    rejects = pq.read_table(result.rejects)
    for row in rejects.select(["txn_id", "reason"]).to_pylist():
        console.print(f"  rejected {row['txn_id']}: {row['reason']}")

    again = ws.batch.score(
        MODEL, str(home / "in"), output, BatchOptions(id_column="txn_id", deployment=DEPLOYMENT, resume=True)
    )
    console.print(
        f"$ matchday batch score ... --resume   → {again.skipped_parts} part(s) were done, {again.rows:,} rows scored "
        "again (a killed job resumes where it stopped; each row is scored and logged once)"
    )

    # the chargebacks come in a week later, keyed by transaction id: they join the batch rows as labels
    first_day = truth.slice(0, ROWS_PER_DAY).filter(pc.is_valid(truth.slice(0, ROWS_PER_DAY)["amount"]))
    labels = [
        ("entity_id", t, int(f)) for t, f in zip(first_day["txn_id"].to_pylist(), first_day["is_fraud"].to_pylist())
    ]
    outcomes = ws.prediction_log.apply_labels(DEPLOYMENT, labels, "feedback")
    joined = sum(1 for o in outcomes if o.request_id is not None)
    console.print(f"chargebacks for day 1 by txn_id: {len(labels):,} sent, {joined:,} joined to the batch rows")
    return Outcome(result.rows, result.scored, result.rejected, result.logged, again.skipped_parts, joined)
