"""`matchday demo --headless`: the whole loop, every step checked, in a fresh working directory, as a newcomer
runs it; a step that does not happen stops it, named; a second demo starts over a home an earlier one made."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from support.server_process import MATCHDAY

from matchday.config import Settings
from matchday.demo import scenario
from matchday.demo.scenario import MARKER, DemoStepFailed, Step
from matchday.workspace import Workspace

SIGNATURE = {"inputs": [{"name": "amount", "type": "float"}], "output": {"task": "regression"}}
STEP_TITLES = [s.title for s in scenario.STEPS] + ["the dashboard: every page of what happened"]


@pytest.mark.slow
def test_the_headless_demo_runs_the_whole_loop_and_checks_every_step(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHDAY_")}
    env.update(COLUMNS="120", RAY_USAGE_STATS_ENABLED="0")
    done = subprocess.run(
        [MATCHDAY, "demo", "--headless"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    for number, title in enumerate(STEP_TITLES, start=1):
        assert f"{number}. {title}" in out, title
        assert re.search(rf"✓ step {number} done in \d+\.\ds", out), f"step {number}\n{out[-4000:]}"
    assert f"all {len(STEP_TITLES)} steps happened" in out
    # what the newcomer is told to run next works on what the demo left: its monitors are in the file it wrote
    config = tmp_path / ".matchday" / "matchday.yaml"
    assert "camera-dim" in config.read_text() and "accuracy-drop" in config.read_text()
    assert (tmp_path / ".matchday" / MARKER).exists()


def test_a_step_that_does_not_happen_stops_the_headless_demo_naming_it(tmp_path: Path) -> None:
    demo = scenario.Demo(Console(file=io.StringIO()), None, tmp_path / "matchday.yaml", None)  # type: ignore[arg-type]
    fine = Step("a step that happens", lambda d: 1, lambda n: None if n == 1 else "no")
    scenario._run_step(demo, 1, 2, fine, headless=True)
    broken = Step("a step that does not", lambda d: 0, lambda n: f"saw {n} alerts")
    with pytest.raises(DemoStepFailed, match=r"demo step 2 \(a step that does not\) did not happen: saw 0 alerts"):
        scenario._run_step(demo, 2, 2, broken, headless=True)
    refused = Step("a step a part refuses", lambda d: d.ws.registry.load("nothing-here"), lambda _: None)
    demo.ws = Workspace(Settings(home=tmp_path))
    try:
        with pytest.raises(DemoStepFailed, match=r"demo step 3 \(a step a part refuses\) failed: .*nothing-here"):
            scenario._run_step(demo, 3, 3, refused, headless=False)
    finally:
        demo.ws.close()
    # without --headless a check that fails is said and the demo goes on (the dashboard still shows what did happen)
    scenario._run_step(demo, 2, 2, broken, headless=False)
    assert "✗ demo step 2 (a step that does not) did not happen: saw 0 alerts" in demo.console.file.getvalue()  # type: ignore[attr-defined]


def test_the_cli_exits_non_zero_naming_the_first_step_that_did_not_happen(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from matchday.demo import scenario\n"
        "scenario.STEPS = (scenario.Step('a lockdown nobody noticed', lambda d: None, lambda _: 'no alert fired'),)\n"
        "from matchday.cli import main\n"
        "main(['demo', '--headless'])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHDAY_")}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "demo step 1 (a lockdown nobody noticed) did not happen: no alert fired" in done.stderr


def test_a_second_demo_starts_over_a_home_the_first_made_and_keeps_one_it_did_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("MATCHDAY_"):
            monkeypatch.delenv(name)
    console = Console(file=io.StringIO())
    made = scenario._fresh_workspace(console)
    made.registry.register("left-by-the-first-demo", "support.flavor_callables:regress", signature=SIGNATURE)
    made.close()
    assert (tmp_path / ".matchday" / MARKER).exists()
    again = scenario._fresh_workspace(console)
    assert again.registry.list_models() == []
    assert "starting over: removed .matchday/" in console.file.getvalue()  # type: ignore[attr-defined]
    again.close()

    (tmp_path / ".matchday" / MARKER).unlink()  # now a home of the user's own
    kept = scenario._fresh_workspace(console)
    kept.registry.register("the-users-own", "support.flavor_callables:regress", signature=SIGNATURE)
    kept.close()
    kept = scenario._fresh_workspace(console)
    assert [m.name for m in kept.registry.list_models()] == ["the-users-own"]
    kept.close()
