"""The demo's batch and edge steps (`make demo` steps 11 and 12) on their own: a week of files scored with
two rows set aside and the rest watched by the checkout deployment, a resume with nothing left to do; a till
that scores offline, refuses a tampered bundle and syncs every row home once."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from matchday.config import Settings
from matchday.demo import batch, edge
from matchday.demo.retraining import DEPLOYMENT
from matchday.demo.scenario import train_fraud_model
from matchday.workspace import Workspace

pytestmark = pytest.mark.slow


def test_the_demo_scores_a_week_in_batch_and_brings_a_tills_telemetry_home(tmp_path: Path) -> None:
    ws = Workspace(Settings(home=tmp_path))
    try:
        model, train, _ = train_fraud_model()
        ws.registry.register("demo-fraud", model, reference=train, target="is_fraud", alias="champion")
        ws.deployments.deploy(DEPLOYMENT, "demo-fraud@champion")
        out = io.StringIO()
        console = Console(file=out, width=200)

        scored = batch.run(console, ws)
        rows = batch.DAYS * batch.ROWS_PER_DAY
        assert (scored.rows, scored.scored, scored.rejected, scored.logged) == (rows, rows - 2, 2, rows - 2)
        assert scored.resumed_parts_skipped == batch.DAYS
        assert scored.labels_joined == batch.ROWS_PER_DAY - 1  # the day's row without an amount was never scored
        assert "amount: null is not allowed" in out.getvalue()

        till = edge.run(console, ws)
        assert "does not match its signed manifest" in till.tamper_refused
        assert till.first_sync_reason is not None and "unreachable" in till.first_sync_reason
        assert (till.offline, till.written, till.already_logged, till.labels_applied) == (
            edge.OFFLINE_ROWS,
            edge.OFFLINE_ROWS,
            0,
            100,
        )
        assert till.logged_from_device == edge.OFFLINE_ROWS
        # a second run of the demo in the same home starts again from a clean slate
        again = edge.run(Console(file=io.StringIO()), ws)
        assert again.written == edge.OFFLINE_ROWS
    finally:
        ws.close()
