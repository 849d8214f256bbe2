"""The demo's retraining step (`make demo` step 10) on its own: the lockdown's accuracy alert starts a run
that is judged, mirrored, canaried and promoted with no one at the keyboard, and accuracy comes back."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from matchday.config import Settings
from matchday.demo import retraining
from matchday.demo.fraud import transactions
from matchday.demo.scenario import train_fraud_model
from matchday.workspace import Workspace

pytestmark = pytest.mark.slow


def test_the_lockdown_is_retrained_promoted_and_accuracy_recovers(tmp_path: Path) -> None:
    ws = Workspace(Settings(home=tmp_path))
    try:
        model, train, _ = train_fraud_model()
        ws.registry.register("demo-fraud", model, reference=train, target="is_fraud", alias="champion")
        out = io.StringIO()
        outcome = retraining.run(Console(file=out, width=200), ws)
        text = out.getvalue()
        assert outcome.state == "promoted", text
        assert outcome.recovered, text
        assert min(outcome.after) > max(0.8, sum(outcome.before) / len(outcome.before)), text
        run = ws.retraining.get(outcome.run or 0)
        assert run.trigger["kind"] == "monitor" and run.trigger["monitor"] == "accuracy-drop"
        assert [s["state"] for s in run.steps][-1] == "promoted"
        assert run.evaluation is not None and run.evaluation["accepted"] and run.evaluation["gain"] > 0
        lineage = ws.registry.get_version(outcome.candidate or "").lineage or {}
        assert lineage["parent"] == "demo-fraud:1" and lineage["trainer"] == "matchday.demo.retraining:train"
        assert lineage["rollout"]["state"] == "promoted"
        assert ws.registry.resolve("demo-fraud@champion").version == int((outcome.candidate or ":0").split(":")[1])
        # the printed policy is the file the step wrote, and the step's server ran with it
        written = yaml.safe_load((tmp_path / "matchday.yaml").read_text())
        assert written["retrain"] == [retraining.POLICY] and run.policy["trainer"] == retraining.POLICY["trainer"]
        for said in ("shadow_passed", "promoted", "accuracy recovered", "lineage of demo-fraud:2"):
            assert said in text, said
    finally:
        ws.close()


def test_the_lockdown_moves_shopping_online_and_makes_abroad_the_fraud() -> None:
    import numpy as np

    lockdown = transactions(5_000, seed=3, lockdown=1.0)
    assert np.mean(lockdown["card_present"].to_numpy(zero_copy_only=False)) < 0.2
    abroad = lockdown["country"].to_numpy(zero_copy_only=False) == "abroad"
    fraud = lockdown["is_fraud"].to_numpy()
    assert fraud[abroad].mean() > 3 * fraud[~abroad].mean()
